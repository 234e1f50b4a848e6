public import Foundation
public import KeygateDomain
import KeygatePKI

extension DatabaseStore: OnboardingStore {
    // MARK: Groups

    /// Stores the group and its audit event in one transaction; throws `groupExists` for a taken name.
    public func createGroup(_ group: Group, audit: AuditEvent.Draft) async throws {
        let policy = try Self.encode(group.policy)
        try await write { db in
            if try db.fetchScalar(Bool.self, sql: "SELECT 1 FROM groups WHERE name = ?", arguments: [group.name]) == true {
                throw KeygateError(.groupExists, "a group named '\(group.name)' already exists")
            }
            try db.execute(
                sql: "INSERT INTO groups (name, policy, created_at) VALUES (?, ?, ?)",
                arguments: [group.name, policy, group.createdAt.unixMilliseconds])
            _ = try self.appendAudit(audit, at: Date(), in: db)
        }
    }

    /// Replaces the group's policy and appends the audit event; throws `groupNotFound` for an unknown name.
    public func updateGroup(_ group: Group, audit: AuditEvent.Draft) async throws {
        let policy = try Self.encode(group.policy)
        try await write { db in
            try db.execute(sql: "UPDATE groups SET policy = ? WHERE name = ?", arguments: [policy, group.name])
            guard db.changesCount == 1 else { throw KeygateError(.groupNotFound, "no group named '\(group.name)'") }
            _ = try self.appendAudit(audit, at: Date(), in: db)
        }
    }

    /// The group with this name, or `nil`.
    public func group(named name: String) async throws -> Group? {
        try await read { db in
            try db.fetchOne(sql: "SELECT * FROM groups WHERE name = ?", arguments: [name]).map(Self.group)
        }
    }

    /// Every group, by name.
    public func groups() async throws -> [Group] {
        try await read { db in try db.fetchAll(sql: "SELECT * FROM groups ORDER BY name").map(Self.group) }
    }

    static func group(_ row: SQLRow) throws -> Group {
        let text: String = row["policy"]
        return Group(
            name: row["name"], policy: try JSONDecoder().decode(Group.Policy.self, from: Data(text.utf8)),
            createdAt: Date(unixMilliseconds: row["created_at"]))
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder.sorted.encode(value), as: UTF8.self)
    }

    // MARK: Allowlist

    /// Adds new devices as `allowlisted` and updates still-allowlisted ones, in one transaction.
    ///
    /// Devices past `allowlisted` are left alone. Appends one `allowlist.imported` audit event by `actor`
    /// when anything was added or updated.
    public func importAllowlist(_ entries: [AllowlistEntry], actor: String) async throws -> AllowlistImportResult {
        try await write { db in
            var result = AllowlistImportResult()
            let now = Date().unixMilliseconds
            let select = "SELECT group_name, pinned_key, token_hash, state FROM devices WHERE id = ?"
            let insert = """
                INSERT INTO devices (id, group_name, state, pinned_key, token_hash, created_at, updated_at)
                VALUES (?, ?, 'allowlisted', ?, ?, ?, ?)
                """
            let update =
                "UPDATE devices SET group_name = ?, pinned_key = ?, token_hash = ?, token_used = 0, updated_at = ? WHERE id = ?"
            for entry in entries {
                if let row = try db.fetchOne(sql: select, arguments: [entry.deviceID]) {
                    let same =
                        (row["group_name"] as String) == entry.group
                        && (row["pinned_key"] as String?) == entry.pinnedKey
                        && (row["token_hash"] as String?) == entry.tokenHash
                    if same || (row["state"] as String) != Device.State.allowlisted.rawValue {
                        result.unchanged += 1
                    } else {
                        try db.execute(
                            sql: update,
                            arguments: [entry.group, entry.pinnedKey, entry.tokenHash, now, entry.deviceID])
                        result.updated += 1
                    }
                } else {
                    try db.execute(
                        sql: insert,
                        arguments: [entry.deviceID, entry.group, entry.pinnedKey, entry.tokenHash, now, now])
                    result.added += 1
                }
            }
            if result.added + result.updated > 0 {
                let subject = entries.count == 1 ? entries[0].deviceID : "\(entries.count) devices"
                _ = try self.appendAudit(
                    .init(
                        actor: actor, action: "allowlist.imported", subject: subject,
                        details: ["added": "\(result.added)", "updated": "\(result.updated)"]), at: Date(), in: db)
            }
            return result
        }
    }

    /// Deletes a device that has not enrolled (and its DDK keys), with the audit event, in one transaction.
    ///
    /// Throws `deviceNotFound` for an unknown ID and `invalidTransition` for an enrolled, quarantined or
    /// retired device.
    public func removeFromAllowlist(deviceID: String, audit: AuditEvent.Draft) async throws {
        try await write { db in
            guard let device = try Self.fetchDevice(deviceID, db) else {
                throw KeygateError(.deviceNotFound, "\(deviceID) is not on the allowlist")
            }
            guard [.allowlisted, .registered, .pendingApproval, .approved].contains(device.state) else {
                throw KeygateError(.invalidTransition, "\(deviceID) is \(device.state.rawValue); retire it instead")
            }
            try db.execute(sql: "DELETE FROM devices WHERE id = ?", arguments: [deviceID])
            try db.execute(sql: "DELETE FROM ddk_keys WHERE device_id = ?", arguments: [deviceID])
            _ = try self.appendAudit(audit, at: Date(), in: db)
        }
    }

    /// The device's allowlist entry (pinned key, token hash and use), or `nil`.
    public func allowlistEntry(deviceID: String) async throws -> AllowlistEntry? {
        try await read { db in
            try db.fetchOne(sql: "SELECT * FROM devices WHERE id = ?", arguments: [deviceID]).map(Self.allowlistEntry)
        }
    }

    /// The entries of those of `deviceIDs` on the allowlist, read in chunks of 500 IDs.
    public func allowlistEntries(deviceIDs: [String]) async throws -> [String: AllowlistEntry] {
        guard !deviceIDs.isEmpty else { return [:] }
        return try await read { db in
            var found: [String: AllowlistEntry] = [:]
            var start = 0
            while start < deviceIDs.count {
                let chunk = Array(deviceIDs[start..<min(start + 500, deviceIDs.count)])
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                for row in try db.fetchAll(sql: "SELECT * FROM devices WHERE id IN (\(marks))", arguments: chunk)
                {
                    let entry = Self.allowlistEntry(row)
                    found[entry.deviceID] = entry
                }
                start += chunk.count
            }
            return found
        }
    }

    static func allowlistEntry(_ row: SQLRow) -> AllowlistEntry {
        AllowlistEntry(
            deviceID: row["id"], group: row["group_name"], pinnedKey: row["pinned_key"], tokenHash: row["token_hash"],
            tokenUsed: row["token_used"], createdAt: Date(unixMilliseconds: row["created_at"]))
    }

    // MARK: Devices

    /// The device with this ID, or `nil`.
    public func device(id: String) async throws -> Device? {
        try await read { db in try Self.fetchDevice(id, db) }
    }

    /// Devices filtered by state and group, ordered by ID after `after`, at most `limit` (clamped to 1...10,000).
    public func devices(state: Device.State?, group: String?, after: String?, limit: Int) async throws -> [Device] {
        try await devices(prefix: nil, state: state, group: group, after: after, limit: limit)
    }

    /// Devices per state; states with none are absent.
    public func deviceCounts() async throws -> [Device.State: Int] {
        try await read { db in
            var counts: [Device.State: Int] = [:]
            for row in try db.fetchAll(sql: "SELECT state, COUNT(*) AS n FROM devices GROUP BY state") {
                if let state = Device.State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    static func fetchDevice(_ id: String, _ db: any SQLSession) throws -> Device? {
        try db.fetchOne(sql: "SELECT * FROM devices WHERE id = ?", arguments: [id]).map(device)
    }

    static func device(_ row: SQLRow) -> Device {
        Device(
            id: row["id"], group: row["group_name"], state: Device.State(rawValue: row["state"]) ?? .quarantined,
            attestationMethod: row["attestation_method"], assuranceLevel: row["assurance_level"],
            ddkEpoch: row["ddk_epoch"],
            failedAttempts: row["failed_attempts"],
            lockedUntil: (row["locked_until"] as Int64?).map(Date.init(unixMilliseconds:)),
            stateReason: row["state_reason"],
            createdAt: Date(unixMilliseconds: row["created_at"]), updatedAt: Date(unixMilliseconds: row["updated_at"]))
    }

    // MARK: Challenges

    /// Stores the challenge and deletes challenges that expired more than an hour ago.
    /// How many challenges one device may have outstanding; older ones are dropped.
    public static let pendingChallengesPerDevice = 8

    /// Stores a challenge; drops the device's oldest outstanding ones past the cap and every expired one.
    public func saveChallenge(_ challenge: Challenge) async throws {
        try await writeAtomic { db in
            try db.execute(
                sql: "INSERT INTO challenges (id, device_id, nonce, epoch, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    challenge.id, challenge.deviceID, Data(challenge.nonce), challenge.epoch,
                    challenge.expiresAt.unixMilliseconds,
                ])
            // Bounded whatever anonymous callers send: at most `pendingChallengesPerDevice` per device
            // (the newest), and none past its expiry (a used or expired challenge proves nothing).
            try db.execute(
                sql: """
                    DELETE FROM challenges WHERE device_id = ? AND id NOT IN (
                        SELECT id FROM challenges WHERE device_id = ? ORDER BY expires_at DESC, id LIMIT ?)
                    """,
                arguments: [challenge.deviceID, challenge.deviceID, Self.pendingChallengesPerDevice])
            try db.execute(sql: "DELETE FROM challenges WHERE expires_at < ?", arguments: [Date().unixMilliseconds])
        }
    }

    /// Marks the challenge used at `now` and returns it, when it belongs to `deviceID`, is unused and has
    /// not expired; `nil` otherwise. The update is atomic, so only one caller gets a challenge.
    public func consumeChallenge(id: String, deviceID: String, now: Date) async throws -> Challenge? {
        try await writeAtomic { db in
            try db.execute(
                sql:
                    "UPDATE challenges SET used_at = ? WHERE id = ? AND device_id = ? AND used_at IS NULL AND expires_at > ?",
                arguments: [now.unixMilliseconds, id, deviceID, now.unixMilliseconds])
            guard db.changesCount == 1,
                let row = try db.fetchOne(sql: "SELECT * FROM challenges WHERE id = ?", arguments: [id])
            else { return nil }
            let nonce: Data = row["nonce"]
            return Challenge(
                id: row["id"], deviceID: row["device_id"], nonce: Array(nonce), epoch: row["epoch"],
                expiresAt: Date(unixMilliseconds: row["expires_at"]))
        }
    }

    // MARK: DDK

    /// The device's DDK public key (SPKI DER) for `epoch`, or `nil`.
    public func ddkPublicKey(deviceID: String, epoch: Int) async throws -> [UInt8]? {
        try await read { db in
            try db.fetchScalar(Data.self, sql: "SELECT public_key FROM ddk_keys WHERE device_id = ? AND epoch = ?",
                arguments: [deviceID, epoch]
            ).map(Array.init)
        }
    }

    /// Stores `P_0` and `P_1`, moves the device to epoch 1 and `registered` (marking its token used), and
    /// appends the audit event, in one transaction.
    ///
    /// Throws `deviceNotFound` for an unknown ID and `alreadyRegistered` when the state forbids registering.
    public func registerDDK(deviceID: String, publicKey: [UInt8], nextPublicKey: [UInt8], audit: AuditEvent.Draft)
        async throws -> Device
    {
        try await write { db in
            guard let device = try Self.fetchDevice(deviceID, db) else {
                throw KeygateError(.deviceNotFound, "\(deviceID) is not on the allowlist")
            }
            guard let next = device.state.apply(.registered) else {
                throw KeygateError(
                    .alreadyRegistered, "\(deviceID) is \(device.state.rawValue) and cannot register again")
            }
            try db.execute(sql: "DELETE FROM ddk_keys WHERE device_id = ?", arguments: [deviceID])
            for (epoch, key) in [(0, publicKey), (1, nextPublicKey)] {
                try db.execute(
                    sql: "INSERT INTO ddk_keys (device_id, epoch, public_key) VALUES (?, ?, ?)",
                    arguments: [deviceID, epoch, Data(key)])
            }
            try db.execute(
                sql: """
                    UPDATE devices SET state = ?, ddk_epoch = 1, reregistration_allowed = 0,
                        token_used = CASE WHEN token_hash IS NULL THEN 0 ELSE 1 END,
                        attestation_method = 'ddk', failed_attempts = 0, updated_at = ? WHERE id = ?
                    """,
                arguments: [next.rawValue, Date().unixMilliseconds, deviceID])
            _ = try self.appendAudit(audit, at: Date(), in: db)
            return try Self.fetchDevice(deviceID, db)!
        }
    }

    /// Moves the device from `epoch` to `epoch + 1`, stores `P_{e+1}` and resets its failure count.
    ///
    /// Throws `challengeInvalid` when the device is no longer at `epoch` (another session won).
    public func advanceDDK(deviceID: String, from epoch: Int, nextPublicKey: [UInt8]) async throws -> Device {
        try await writeAtomic { db in
            try db.execute(
                sql:
                    "UPDATE devices SET ddk_epoch = ?, failed_attempts = 0, updated_at = ? WHERE id = ? AND ddk_epoch = ?",
                arguments: [epoch + 1, Date().unixMilliseconds, deviceID, epoch])
            guard db.changesCount == 1 else {
                throw KeygateError(
                    .challengeInvalid, "another session of \(deviceID) completed first; ask for a new challenge")
            }
            try db.execute(
                sql:
                    "INSERT INTO ddk_keys (device_id, epoch, public_key) VALUES (?, ?, ?) "
                    + "ON CONFLICT (device_id, epoch) DO UPDATE SET public_key = excluded.public_key",
                arguments: [deviceID, epoch + 1, Data(nextPublicKey)])
            return try Self.fetchDevice(deviceID, db)!
        }
    }

    /// Counts a failed attestation; at `lockAfter` failures in a row, locks the device until `now + lockFor`
    /// and resets the count. Appends the audit event with the count (and lock time) in the same transaction.
    ///
    /// Throws `deviceNotFound` for an unknown ID.
    public func recordAttestationFailure(
        deviceID: String, lockAfter: Int, lockFor: TimeInterval, now: Date, audit: AuditEvent.Draft
    ) async throws -> Device {
        try await write { db in
            try db.execute(
                sql: "UPDATE devices SET failed_attempts = failed_attempts + 1, updated_at = ? WHERE id = ?",
                arguments: [now.unixMilliseconds, deviceID])
            guard var device = try Self.fetchDevice(deviceID, db) else {
                throw KeygateError(.deviceNotFound, "no device \(deviceID)")
            }
            var details = audit.details
            details["failedAttempts"] = "\(device.failedAttempts)"
            if device.failedAttempts >= lockAfter {
                let until = now + lockFor
                try db.execute(
                    sql: "UPDATE devices SET locked_until = ?, failed_attempts = 0 WHERE id = ?",
                    arguments: [until.unixMilliseconds, deviceID])
                details["lockedUntil"] = ISO8601DateFormatter().string(from: until)
                device.lockedUntil = until
            }
            _ = try self.appendAudit(
                .init(actor: audit.actor, action: audit.action, subject: audit.subject, details: details), at: now,
                in: db)
            return device
        }
    }

    /// Resets the failure count; throws `deviceNotFound` for an unknown ID.
    public func clearAttestationFailures(deviceID: String) async throws -> Device {
        try await writeAtomic { db in
            try db.execute(sql: "UPDATE devices SET failed_attempts = 0 WHERE id = ?", arguments: [deviceID])
            guard let device = try Self.fetchDevice(deviceID, db) else {
                throw KeygateError(.deviceNotFound, "no device \(deviceID)")
            }
            return device
        }
    }

    /// Applies the event (recording `reason` and the attestation, if any), queues `outbox` and appends the
    /// audit event, in one transaction. Throws `deviceNotFound` or `invalidTransition`.
    public func transition(
        deviceID: String, event: Device.Event, reason: String?, attestation: (method: String, level: Int)?,
        outbox: [OutboxItem], audit: AuditEvent.Draft
    ) async throws -> Device {
        try await write { db in
            try Self.applyTransition(deviceID, event: event, reason: reason, attestation: attestation, in: db)
            for item in outbox { try Self.insertOutbox(item, in: db) }
            _ = try self.appendAudit(audit, at: Date(), in: db)
            return try Self.fetchDevice(deviceID, db)!
        }
    }

    /// Moves the device to `enrolled`, records the certificate, queues `outbox`, uses up the enrollment
    /// token when `consumeToken`, and appends the audit events, in one transaction.
    ///
    /// Throws `deviceNotFound`, `invalidTransition`, or `enrollmentTokenInvalid` when the token was used.
    public func enroll(
        deviceID: String, certificate: CertificateRecord, attestation: (method: String, level: Int),
        consumeToken: Bool, outbox: OutboxItem?, audit: [AuditEvent.Draft]
    ) async throws -> Device {
        try await write { db in
            try Self.applyTransition(deviceID, event: .enrolled, reason: nil, attestation: attestation, in: db)
            if let outbox { try Self.insertOutbox(outbox, in: db) }
            if consumeToken {
                try db.execute(
                    sql: "UPDATE devices SET token_used = 1 WHERE id = ? AND token_used = 0", arguments: [deviceID])
                guard db.changesCount == 1 else {
                    throw KeygateError(.enrollmentTokenInvalid, "the enrollment token of \(deviceID) was used already")
                }
            }
            try Self.insertCertificate(certificate, in: db)
            for draft in audit { _ = try self.appendAudit(draft, at: certificate.createdAt, in: db) }
            return try Self.fetchDevice(deviceID, db)!
        }
    }

    static func applyTransition(
        _ deviceID: String, event: Device.Event, reason: String?, attestation: (method: String, level: Int)?,
        in db: any SQLSession
    ) throws {
        guard let device = try fetchDevice(deviceID, db) else {
            throw KeygateError(.deviceNotFound, "no device \(deviceID)")
        }
        guard let next = device.state.apply(event) else {
            throw KeygateError(
                .invalidTransition, "\(deviceID) is \(device.state.rawValue); '\(event.rawValue)' is not allowed")
        }
        try db.execute(
            sql: """
                UPDATE devices SET state = ?, state_reason = ?, attestation_method = COALESCE(?, attestation_method),
                    assurance_level = COALESCE(?, assurance_level), updated_at = ? WHERE id = ?
                """,
            arguments: [
                next.rawValue, reason, attestation?.method, attestation?.level, Date().unixMilliseconds, deviceID,
            ])
    }
}
