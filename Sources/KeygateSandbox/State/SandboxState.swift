import Crypto
import Foundation
import KeygatePKI

/// What the sandbox remembers across restarts, kept as JSON in its data folder (0600: it holds the
/// sandbox's own credentials and Key Vault keys, which are test material by design).
struct SandboxState: Codable, Sendable {
    struct VaultKey: Codable, Sendable {
        var name: String
        var version: String
        /// The P-256 private key, raw scalar, base64.
        var privateKey: String
        var createdAt: Date
    }

    var tenantID: String
    var clientID: String
    var clientSecret: String
    /// Signs the bearer tokens the AAD endpoint hands out (HMAC-SHA256, base64).
    var tokenKey: String
    var vaultKeys: [VaultKey] = []
    /// The bearer token of the control endpoint.
    var controlToken: String
    /// DPS, IoT Hub and IoT Central.
    var dps: DPSState
    var hub: HubState
    var central: CentralState

    static func fresh() -> SandboxState {
        func random(_ count: Int) -> String {
            Base64URL.encode(SymmetricKey(size: .init(bitCount: count * 8)).withUnsafeBytes { Array($0) })
        }
        return SandboxState(
            tenantID: UUID().uuidString.lowercased(), clientID: UUID().uuidString.lowercased(),
            clientSecret: random(32),
            tokenKey: random(32), controlToken: random(24), dps: .fresh(), hub: .fresh(hostName: "localhost"),
            central: .fresh())
    }
}

extension SandboxState {
    /// Reads a state file; the control token, DPS, IoT Hub and IoT Central, missing from files an
    /// earlier sandbox wrote, are made fresh.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        tenantID = try container.decode(String.self, forKey: .tenantID)
        clientID = try container.decode(String.self, forKey: .clientID)
        clientSecret = try container.decode(String.self, forKey: .clientSecret)
        tokenKey = try container.decode(String.self, forKey: .tokenKey)
        vaultKeys = try container.decodeIfPresent([VaultKey].self, forKey: .vaultKeys) ?? []
        controlToken =
            try container.decodeIfPresent(String.self, forKey: .controlToken)
            ?? Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        dps = try container.decodeIfPresent(DPSState.self, forKey: .dps) ?? .fresh()
        hub = try container.decodeIfPresent(HubState.self, forKey: .hub) ?? .fresh(hostName: "localhost")
        central = try container.decodeIfPresent(CentralState.self, forKey: .central) ?? .fresh()
    }
}

/// Loads and saves the state file atomically, one writer at a time.
actor SandboxStore {
    let path: String
    /// Whether changes are written to `path` (else the state lives in memory after the first write).
    let persistent: Bool
    private(set) var state: SandboxState

    init(path: String, persist: Bool = true) throws {
        self.path = path
        self.persistent = persist
        if let data = FileManager.default.contents(atPath: path) {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let loaded = try decoder.decode(SandboxState.self, from: data)
            // Written back at once: what an older file lacked is fixed from now on.
            try Self.write(loaded, to: path)
            state = loaded
        } else {
            state = .fresh()
            try Self.write(state, to: path)
        }
    }

    /// Reads part of the state on the actor. Prefer it to `state` for reads that run while the sandbox
    /// is busy: a copy of the whole state held outside the actor (even for a moment) makes the next
    /// in-place change copy every registry it touches, a cost that grows with the fleet.
    func read<T: Sendable>(_ body: (SandboxState) throws -> T) rethrows -> T { try body(state) }

    private var waiters: [CheckedContinuation<Void, any Error>] = []
    private var flushing = false

    /// Applies `body` and returns once the change is on disk. Changes that arrive while a write is
    /// in progress share the next one (group commit), so a burst of registrations does not write the
    /// whole file once per change.
    ///
    /// `body` changes the state in place, so a change costs what it touches, not the size of the
    /// registries (a copy made the cost of each registration grow with the fleet). A body therefore
    /// makes its checks, and returns its refusals, before it changes anything: what it changed stays
    /// changed if it throws afterwards.
    func update<T>(_ body: (inout SandboxState) throws -> T) async throws -> T {
        let result = try body(&state)
        try await persist()
        return result
    }

    private func persist() async throws {
        guard persistent else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            waiters.append(continuation)
            if !flushing {
                flushing = true
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while !waiters.isEmpty {
            let batch = waiters
            waiters = []
            let snapshot = state
            let path = self.path
            do {
                try await Task.detached { try Self.write(snapshot, to: path) }.value
                for waiter in batch { waiter.resume() }
            } catch {
                for waiter in batch { waiter.resume(throwing: error) }
            }
        }
        flushing = false
    }

    static func write(_ state: SandboxState, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let temporary = path + ".tmp"
        _ = FileManager.default.createFile(
            atPath: temporary, contents: try encoder.encode(state), attributes: [.posixPermissions: 0o600])
        _ = rename(temporary, path)
    }
}
