public import Foundation

/// What the agent keeps in its state folder. No DDK key is ever stored: only the certificate
/// generation (to re-derive the TLS key), the certificate, and for non-DDK methods a random key (0600).
public struct AgentState: Codable, Sendable {
    /// The device ID the agent enrolls as.
    public var deviceId: String
    /// Keygate's base URL (`https://host:8443`).
    public var server: String
    /// The attestation method: `ddk`, `x509` or `symmetric-key`.
    public var attestation: String
    /// DDK: the generation `g` of the derived TLS key in use.
    public var tlsGeneration: Int
    /// DDK, agents before the ratchet: the epoch after the last session. Read once to start the
    /// chain file (``DDKChain``); the chain file holds it since.
    public var ddkEpoch: Int?
    /// The serial (hex) of the certificate in use; `nil` before enrollment.
    public var certificateSerial: String?
    /// The end of that certificate's validity; `nil` before enrollment.
    public var certificateNotAfter: Date?
    /// The device's last known state (`enrolled`, `pendingApproval`); `nil` before the first answer.
    public var state: String?
    /// Where DPS assigned the device (kept so a restart connects without registering again).
    public var assignedHub: String?
    /// The device ID DPS assigned in that hub.
    public var hubDeviceId: String?
    /// The certificate serial the assignment was made with (a new certificate registers again).
    public var assignedWithSerial: String?

    /// Creates the state of a device that has not enrolled yet (TLS generation 0).
    public init(deviceId: String, server: String, attestation: String) {
        self.deviceId = deviceId
        self.server = server
        self.attestation = attestation
        self.tlsGeneration = 0
    }
}

/// Where this device is in its DDK key chain, in `ddk-chain.json` (0600), written only by DDK
/// sessions, each time before a session is sent and after its answer.
public struct DDKChain: Codable, Sendable, Equatable {
    /// Keygate's epoch after this device's last confirmed session. A fork proof proves this epoch's key,
    /// so a clone that ran several sessions since is still exposed.
    public var epoch: Int
    /// The session secret `s_e` of `epoch` (base64; `nil`: that epoch's key comes from the attributes
    /// alone, as for epoch 0 and devices enrolled before the ratchet). Useless without the attributes.
    public var secret: String?
    /// The secret of the epoch before, kept until the next session.
    public var previousSecret: String?
    /// The secret announced for `epoch + 1` by a session whose answer has not been recorded (written
    /// before the session is sent: after a crash the agent follows Keygate whichever way it went).
    public var pendingSecret: String?

    /// Creates a chain position.
    public init(epoch: Int, secret: String? = nil, previousSecret: String? = nil, pendingSecret: String? = nil) {
        self.epoch = epoch
        self.secret = secret
        self.previousSecret = previousSecret
        self.pendingSecret = pendingSecret
    }

    /// Whether every key so far came from the attributes alone (a device from before the ratchet).
    public var isLegacy: Bool { secret == nil && previousSecret == nil && pendingSecret == nil }

    /// Keygate moved to `epoch` with the pending secret: it becomes the current one.
    public mutating func confirm(epoch: Int) {
        previousSecret = secret
        secret = pendingSecret
        pendingSecret = nil
        self.epoch = epoch
    }
}

/// The files of the state folder.
public struct StateFolder: Sendable {
    /// The folder's path.
    public let path: String

    /// Uses the folder at `path`, creating it (0700) when needed; throws when it cannot be created.
    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: path)
    }

    /// `state.json`: the ``AgentState``.
    public var stateFile: String { path + "/state.json" }
    /// `device.crt.pem`: the certificate chain in use, under a stable name for people and tools.
    public var certificateFile: String { path + "/device.crt.pem" }
    /// `device.key.pem`: its key (non-DDK methods only; 0600).
    public var keyFile: String { path + "/device.key.pem" }
    /// `seed`: the optional 32-byte seed mixed into the DDK identity (0600).
    public var seedFile: String { path + "/seed" }
    /// `ddk-chain.json`: the ``DDKChain`` (0600).
    public var chainFile: String { path + "/ddk-chain.json" }

    /// The DDK chain; for a state folder from before the ratchet, started from `state.json`'s epoch.
    public func loadChain() -> DDKChain? {
        if let data = FileManager.default.contents(atPath: chainFile) {
            return try? JSONDecoder().decode(DDKChain.self, from: data)
        }
        return load()?.ddkEpoch.map { DDKChain(epoch: $0) }
    }

    /// Writes the DDK chain atomically (0600).
    public func saveChain(_ chain: DDKChain) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(try encoder.encode(chain), to: chainFile, mode: 0o600)
    }
    /// The chain and key of one certificate generation; the state names the generation in use.
    public func certificateFile(generation: Int) -> String { path + "/device.\(generation).crt.pem" }
    /// The key file of certificate generation `generation` (non-DDK methods).
    public func keyFile(generation: Int) -> String { path + "/device.\(generation).key.pem" }

    /// `file` if it exists, else `fallback` (state folders written before generations had names).
    func existing(_ file: String, or fallback: String) -> String {
        FileManager.default.fileExists(atPath: file) ? file : fallback
    }

    /// Removes the files of generations before `generation`.
    func removeGenerations(before generation: Int) {
        guard generation > 0 else { return }
        for old in 0..<generation {
            try? FileManager.default.removeItem(atPath: certificateFile(generation: old))
            try? FileManager.default.removeItem(atPath: keyFile(generation: old))
        }
    }

    /// The saved state, or `nil` when there is none or it cannot be read.
    public func load() -> AgentState? {
        guard let data = FileManager.default.contents(atPath: stateFile) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(AgentState.self, from: data)
    }

    /// Writes the state atomically (0644).
    public func save(_ state: AgentState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try write(try encoder.encode(state), to: stateFile, mode: 0o644)
    }

    /// Writes atomically with the given permissions.
    public func write(_ data: Data, to file: String, mode: Int) throws {
        // A unique name: the renewal task and the telemetry loop may write at the same moment.
        let temporary = file + ".\(UUID().uuidString).tmp"
        _ = FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: mode])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        _ = rename(temporary, file)
    }

    /// The optional seed: 32 random bytes made once, for fleets of identical machines.
    public func seed(create: Bool) throws -> [UInt8] {
        if let data = FileManager.default.contents(atPath: seedFile) { return Array(data) }
        guard create else { return [] }
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try write(Data(bytes), to: seedFile, mode: 0o600)
        return bytes
    }
}
