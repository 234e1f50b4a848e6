import Foundation
public import KeygateDomain
import KeygateAttestation
import KeygatePKI
import KeygateStore
import SwiftASN1
import X509

/// Groups, the allowlist and the device directory, as the admin API, the CLI and the demo change
/// and read them. Every change is audited with its `actor` in the same transaction.
public struct FleetService: Sendable {
    let store: any ServerStore
    let secrets: SecretBox?

    // MARK: Groups

    /// All groups.
    public func groups() async throws -> [Group] { try await store.groups() }

    /// The group named `name`; throws `groupNotFound` when there is none.
    public func group(named name: String) async throws -> Group {
        guard let group = try await store.group(named: name) else {
            throw KeygateError(.groupNotFound, "no group named '\(name)'")
        }
        return group
    }

    /// Creates a group from the fields of `request` (defaults for the rest). Answers the group and,
    /// when one was generated, its symmetric key (shown this once).
    public func createGroup(_ request: GroupRequest, actor: String) async throws -> (Group, generatedKey: String?) {
        guard let name = request.name, Group.isValidName(name) else {
            throw KeygateError(.invalidPolicy, "a group name is 1 to 64 letters, digits, - and _")
        }
        var policy = Group.Policy()
        let generatedKey = try apply(request, to: &policy)
        try policy.validate()
        let group = Group(name: name, policy: policy)
        try await store.createGroup(
            group, audit: .init(actor: actor, action: "group.created", subject: name, details: policy.auditDetails))
        return (group, generatedKey)
    }

    /// Changes the fields present in `request`.
    public func updateGroup(named name: String, _ request: GroupRequest, actor: String) async throws
        -> (Group, generatedKey: String?)
    {
        var group = try await group(named: name)
        let generatedKey = try apply(request, to: &group.policy)
        try group.policy.validate()
        try await store.updateGroup(
            group,
            audit: .init(actor: actor, action: "group.updated", subject: name, details: group.policy.auditDetails))
        return (group, generatedKey)
    }

    /// Applies the fields present in `request`; returns a generated symmetric key (shown once).
    private func apply(_ request: GroupRequest, to policy: inout Group.Policy) throws -> String? {
        if let value = request.attestationMethods { policy.attestationMethods = value }
        if let value = request.minimumAssurance { policy.minimumAssurance = value }
        if let value = request.profile {
            _ = try CertificateProfile.named(value)
            policy.profile = value
        }
        if let value = request.keyAlgorithms {
            policy.keyAlgorithms = try value.map {
                guard let algorithm = KeyAlgorithm(flag: $0) else {
                    throw KeygateError(.invalidPolicy, "unknown key algorithm '\($0)'")
                }
                return algorithm.rawValue
            }
        }
        if let value = request.validityDays {
            policy.validityDays = value
            policy.validitySeconds = nil
        }
        if let value = request.validitySeconds { policy.validitySeconds = value == 0 ? nil : value }
        if let value = request.quarantineAction { policy.quarantineAction = value }
        if let value = request.releaseHeldOnReauthorize { policy.releaseHeldOnReauthorize = value }
        if let value = request.allowKeyReuse { policy.allowKeyReuse = value }
        if let value = request.firstContact { policy.firstContact = value }
        if let value = request.renewAfterFraction { policy.renewAfterFraction = value }
        if let value = request.renewAfterExpiryDays { policy.renewAfterExpiryDays = value }
        if let value = request.approval { policy.approval = value }
        if let value = request.connector { policy.connector = value.isEmpty ? nil : value }
        if let value = request.bootstrapCAs {
            for pem in value {
                guard let certificate = try? Certificate(pemEncoded: pem), certificate.isCertificateAuthority else {
                    throw KeygateError(.invalidPolicy, "bootstrapCAs must be PEM CA certificates")
                }
            }
            policy.bootstrapCAs = value
        }
        guard request.symmetricKey != nil || request.generateSymmetricKey == true else { return nil }
        guard let secrets else {
            throw KeygateError(.invalidPolicy, "the server has no passphrase to seal group keys with")
        }
        let key = request.symmetricKey ?? SymmetricKeyAttestation.generateGroupKey()
        guard let decoded = Data(base64Encoded: key), decoded.count >= 16 else {
            throw KeygateError(.invalidPolicy, "symmetricKey must be base64 of at least 16 bytes")
        }
        policy.sealedGroupKey = try secrets.seal(key)
        return request.symmetricKey == nil ? key : nil
    }

    // MARK: Allowlist

    /// Adds or updates allowlist rows. Rows with errors are skipped (listed by index) unless
    /// `request.strict`, which refuses the whole import; generated enrollment tokens are answered once.
    public func importAllowlist(_ request: AllowlistImportRequest, actor: String) async throws
        -> AllowlistImportResultBody
    {
        guard request.entries.count <= 20_000 else {
            throw KeygateError(.bodyTooLarge, "at most 20,000 entries per request; send batches")
        }
        let groups = Dictionary(uniqueKeysWithValues: try await store.groups().map { ($0.name, $0.policy) })
        // Rows staged into a group whose first contact needs a token, and that bring neither a token nor a
        // pinned key, get one generated, unless the device already holds one (re-importing changes nothing).
        let needingToken = request.entries.filter {
            $0.token == nil && $0.pinnedKey == nil && $0.generateToken != false
                && groups[$0.group]?.firstContactNeedsToken == true
        }
        let existing = try await store.allowlistEntries(deviceIDs: needingToken.map(\.deviceId))
        var entries: [AllowlistEntry] = []
        var errors: [AllowlistImportResultBody.RowError] = []
        var generatedTokens: [String: String] = [:]
        var seen = Set<String>()
        for (index, row) in request.entries.enumerated() {
            func reject(_ code: KeygateError.Code, _ message: String) {
                errors.append(.init(index: index, deviceId: row.deviceId, code: code.rawValue, message: message))
            }
            guard AllowlistEntry.isValidDeviceID(row.deviceId) else {
                reject(.invalidDeviceID, "device IDs are 1 to 128 letters, digits and : . _ -"); continue
            }
            guard seen.insert(row.deviceId).inserted else {
                reject(.conflict, "\(row.deviceId) appears twice"); continue
            }
            guard let policy = groups[row.group] else {
                reject(.groupNotFound, "no group named '\(row.group)'"); continue
            }
            if policy.firstContact == "pinned", policy.attestationMethods.contains("ddk"), row.pinnedKey == nil {
                reject(
                    .pinnedKeyRequired,
                    "group \(row.group) requires each device's epoch-0 key pinned (pinnedKey; keygate-agent identity prints it)")
                continue
            }
            if let pinned = row.pinnedKey {
                guard let der = Base64URL.decode(pinned), DDKProtocol.isValidPublicKey(der) else {
                    reject(
                        .malformedInput,
                        "pinnedKey must be a P-256 SPKI in base64url (keygate-agent identity prints it)");
                    continue
                }
            }
            if let given = row.token, given.count < 16 || given.count > 256 {
                reject(.malformedInput, "an enrollment token must be 16 to 256 characters")
                continue
            }
            var token = row.token
            var tokenHash: String?
            var pinnedKey = row.pinnedKey
            let kept = existing[row.deviceId].flatMap { $0.tokenHash != nil || $0.pinnedKey != nil ? $0 : nil }
            if row.generateToken == true
                || (token == nil && pinnedKey == nil && row.generateToken != false && policy.firstContactNeedsToken
                    && kept == nil)
            {
                token = AdminTokenSecret.generate()
                generatedTokens[row.deviceId] = token
            } else if token == nil, pinnedKey == nil, row.generateToken != false, policy.firstContactNeedsToken,
                let kept
            {
                tokenHash = kept.tokenHash
                pinnedKey = kept.pinnedKey
            }
            if policy.firstContactNeedsToken, token == nil, tokenHash == nil, pinnedKey == nil {
                reject(
                    .enrollmentTokenRequired,
                    "group \(row.group) requires a one-time enrollment token or a pinned key at first contact")
                continue
            }
            entries.append(
                AllowlistEntry(
                    deviceID: row.deviceId, group: row.group, pinnedKey: pinnedKey,
                    tokenHash: token.map(AdminTokenSecret.hash) ?? tokenHash))
        }
        if request.strict == true && !errors.isEmpty {
            return AllowlistImportResultBody(result: .init(), errors: errors, tokens: nil)
        }
        let result = try await store.importAllowlist(entries, actor: actor)
        return AllowlistImportResultBody(
            result: result, errors: errors, tokens: generatedTokens.isEmpty ? nil : generatedTokens)
    }

    /// A page of allowlist entries (with their device's state) in device-ID order, after `after`,
    /// and the ID to continue after when the page is full.
    public func allowlist(group: String?, after: String?, limit: Int) async throws
        -> (entries: [(AllowlistEntry, Device.State)], next: String?)
    {
        let devices = try await store.devices(state: nil, group: group, after: after, limit: limit)
        var entries: [(AllowlistEntry, Device.State)] = []
        for device in devices {
            if let entry = try await store.allowlistEntry(deviceID: device.id) { entries.append((entry, device.state)) }
        }
        return (entries, devices.count == limit ? devices.last?.id : nil)
    }

    /// Removes a device that has not enrolled yet, audited as `allowlist.removed` in the same transaction.
    /// Throws `deviceNotFound` when it is not on the allowlist and `invalidTransition` for an enrolled,
    /// quarantined or retired device (retire it instead).
    public func removeFromAllowlist(deviceID: String, actor: String) async throws {
        try await store.removeFromAllowlist(
            deviceID: deviceID, audit: .init(actor: actor, action: "allowlist.removed", subject: deviceID))
    }

    // MARK: Devices

    /// A page of devices in ID order, after `after`.
    public func devices(state: Device.State?, group: String?, after: String?, limit: Int) async throws -> [Device] {
        try await store.devices(state: state, group: group, after: after, limit: limit)
    }

    /// The device with ID `id`; throws `deviceNotFound` when there is none.
    public func device(id: String) async throws -> Device {
        guard let device = try await store.device(id: id) else {
            throw KeygateError(.deviceNotFound, "no device \(id)")
        }
        return device
    }

    /// A device's certificates, oldest first.
    public func certificates(ofDevice id: String, limit: Int = 100) async throws -> [CertificateRecord] {
        try await store.certificates(matching: .init(deviceID: id, limit: limit))
    }

    /// The audit events about a device (or any subject), newest first.
    public func auditEvents(subject: String, limit: Int = 20) async throws -> [AuditEvent] {
        try await store.auditEvents(subject: subject, since: nil, limit: limit)
    }
}

extension Group.Policy {
    var auditDetails: [String: String] {
        [
            "methods": attestationMethods.joined(separator: ","), "minimumAssurance": "\(minimumAssurance)",
            "approval": approval, "validityDays": "\(validityDays)",
            "validitySeconds": validitySeconds.map { "\($0)" } ?? "",
            "quarantineAction": quarantineAction, "releaseHeldOnReauthorize": "\(releaseHeldOnReauthorize)",
            "keyAlgorithms": keyAlgorithms.joined(separator: ","), "firstContact": firstContact,
        ]
    }
}

extension Certificate {
    /// Whether the certificate's basic constraints make it a CA.
    var isCertificateAuthority: Bool {
        guard let constraints = try? extensions.basicConstraints else { return false }
        if case .isCertificateAuthority = constraints { return true }
        return false
    }
}
