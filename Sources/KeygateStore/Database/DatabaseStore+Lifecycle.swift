public import Foundation
public import KeygateDomain
import KeygatePKI

extension DatabaseStore: LifecycleStore {
    // MARK: Device changes

    /// Applies the event, the optional DDK reset, the queued Azure changes and the certificate change,
    /// and appends the audit event (with the changed serials and how they changed), in one transaction.
    ///
    /// Throws `deviceNotFound` or `invalidTransition`. Returns the device and the serials changed.
    public func changeDevice(_ change: DeviceChange) async throws -> (Device, [String]) {
        let (device, changed, revisions) = try await write { db in
            try Self.applyTransition(
                change.deviceID, event: change.event, reason: change.reason, attestation: nil, in: db)
            if change.resetDDK {
                try db.execute(sql: "DELETE FROM ddk_keys WHERE device_id = ?", arguments: [change.deviceID])
                try db.execute(
                    sql:
                        "UPDATE devices SET state = 'allowlisted', ddk_epoch = 0, reregistration_allowed = 1 WHERE id = ?",
                    arguments: [change.deviceID])
            }
            for item in change.outbox { try Self.insertOutbox(item, in: db) }
            var changed: [String] = []
            var revisions: [String: Int64] = [:]
            if let certificates = change.certificates {
                (changed, revisions) = try Self.apply(certificates, deviceID: change.deviceID, at: change.at, in: db)
            }
            var details = change.audit.details
            if !changed.isEmpty {
                details["certificates"] = changed.joined(separator: ",")
                details["certificateChange"] = change.certificates.map(Self.describe) ?? ""
            }
            _ = try self.appendAudit(
                .init(
                    actor: change.audit.actor, action: change.audit.action, subject: change.audit.subject,
                    details: details), at: change.at, in: db)
            return (try Self.fetchDevice(change.deviceID, db)!, changed, revisions)
        }
        for (issuer, revision) in revisions { ownRevisions.add(issuer: issuer, revision) }
        return (device, changed)
    }

    private static func describe(_ change: CertificateChange) -> String {
        switch change {
        case .hold: return "hold"
        case .revoke(let reason): return "revoke:\(reason.name)"
        case .release: return "release"
        case .revokeHeld(let reason): return "revokeHeld:\(reason.name)"
        }
    }

    /// Changes the statuses; bumps their issuers' revision first and marks each changed certificate
    /// with it. Returns the serials changed and the new revision of each issuer.
    private static func apply(_ change: CertificateChange, deviceID: String, at date: Date, in db: any SQLSession) throws
        -> ([String], [String: Int64])
    {
        let statuses: String
        switch change {
        case .hold: statuses = "('active')"
        case .revoke: statuses = "('active', 'onHold')"
        case .release, .revokeHeld: statuses = "('onHold')"
        }
        let rows = try db.fetchAll(sql: "SELECT serial, issuer, not_after FROM certificates WHERE device_id = ? AND status IN \(statuses)",
            arguments: [deviceID])
        var revisions: [String: Int64] = [:]
        for issuer in Set(rows.map { $0["issuer"] as String }) {
            revisions[issuer] = try bumpRevocationRevision(issuer: issuer, in: db)
        }
        for row in rows {
            let serial: String = row["serial"]
            let expired = Date(unixSeconds: row["not_after"]) < date
            switch change {
            case .hold:
                try setStatus(serial, .onHold, reason: .certificateHold, at: date, in: db)
            case .revoke(let reason), .revokeHeld(let reason):
                // A revocation for good keeps the time the certificate stopped being trusted.
                try db.execute(
                    sql: """
                        UPDATE certificates SET status = 'revoked', revocation_reason = ?,
                            revoked_at = COALESCE(revoked_at, ?) WHERE serial = ?
                        """,
                    arguments: [reason.rawValue, date.unixSeconds, serial])
            case .release where expired:
                try db.execute(
                    sql: "UPDATE certificates SET status = 'revoked', revocation_reason = ? WHERE serial = ?",
                    arguments: [RevocationReason.cessationOfOperation.rawValue, serial])
            case .release:
                try db.execute(
                    sql:
                        "UPDATE certificates SET status = 'active', revoked_at = NULL, revocation_reason = NULL WHERE serial = ?",
                    arguments: [serial])
            }
            try db.execute(
                sql: "UPDATE certificates SET status_revision = ? WHERE serial = ?",
                arguments: [revisions[row["issuer"] as String] ?? 0, serial])
        }
        return (rows.map { $0["serial"] }, revisions)
    }

    private static func setStatus(
        _ serial: String, _ status: CertificateRecord.Status, reason: RevocationReason, at date: Date, in db: any SQLSession
    ) throws {
        try db.execute(
            sql: "UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ? WHERE serial = ?",
            arguments: [status.rawValue, date.unixSeconds, reason.rawValue, serial])
    }

    /// Whether a `resetDDK` change let the device register again; `false` for unknown devices.
    public func reregistrationAllowed(deviceID: String) async throws -> Bool {
        try await read { db in
            try db.fetchScalar(Bool.self, sql: "SELECT reregistration_allowed FROM devices WHERE id = ?", arguments: [deviceID]) ?? false
        }
    }

    /// The device's most recently issued certificate, whatever its status; `nil` when it has none.
    public func latestCertificate(deviceID: String) async throws -> CertificateRecord? {
        try await read { db in
            try db.fetchOne(sql: "SELECT * FROM certificates WHERE device_id = ? ORDER BY created_at DESC, serial DESC LIMIT 1",
                arguments: [deviceID]
            ).map(Self.certificateRecord)
        }
    }

    // MARK: Expiry watch

    /// Active device certificates that no newer certificate of the same device replaced.
    static let unrenewedClause = """
        status = 'active' AND device_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM certificates AS newer
            WHERE newer.device_id = certificates.device_id AND newer.created_at > certificates.created_at)
        """

    /// Flags unrenewed active device certificates expiring in `now..<before` (up to 10,000 per call).
    ///
    /// Returns the certificates flagged by this call and how many in that window are flagged in all.
    public func flagExpiring(before: Date, now: Date) async throws -> (
        newlyFlagged: [CertificateRecord], flagged: Int
    ) {
        try await write { db in
            let window = "not_after < ? AND not_after >= ? AND \(Self.unrenewedClause)"
            let fresh = try db.fetchAll(sql: "SELECT * FROM certificates WHERE \(window) AND expiry_flagged_at IS NULL LIMIT 10000",
                arguments: [before.unixSeconds, now.unixSeconds]
            ).map(Self.certificateRecord)
            for record in fresh {
                try db.execute(
                    sql: "UPDATE certificates SET expiry_flagged_at = ? WHERE serial = ?",
                    arguments: [now.unixSeconds, record.serial])
            }
            let flagged =
                try db.fetchScalar(Int.self, sql: "SELECT COUNT(*) FROM certificates WHERE \(window) AND expiry_flagged_at IS NOT NULL",
                    arguments: [before.unixSeconds, now.unixSeconds]) ?? 0
            return (fresh, flagged)
        }
    }

    // MARK: Rotations

    /// Stores the rotation, replacing the group's previous one, and its audit event in one transaction.
    public func startRotation(_ rotation: Rotation, audit: AuditEvent.Draft) async throws {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO rotations (group_name, started_at, per_minute, reason) VALUES (?, ?, ?, ?)
                    ON CONFLICT (group_name) DO UPDATE SET started_at = excluded.started_at,
                        per_minute = excluded.per_minute, reason = excluded.reason
                    """,
                arguments: [
                    rotation.group, rotation.startedAt.unixMilliseconds, rotation.perMinute, rotation.reason,
                ])
            _ = try self.appendAudit(audit, at: rotation.startedAt, in: db)
        }
    }

    /// The group's current rotation, or `nil`.
    public func rotation(group: String) async throws -> Rotation? {
        try await read { db in
            try db.fetchOne(sql: "SELECT * FROM rotations WHERE group_name = ?", arguments: [group]).map {
                Rotation(
                    group: $0["group_name"], startedAt: Date(unixMilliseconds: $0["started_at"]),
                    perMinute: $0["per_minute"], reason: $0["reason"])
            }
        }
    }

    /// Counts the group's enrolled devices, those with a certificate issued since the start, and those
    /// the pacing (`perMinute`) has asked by `now`.
    public func rotationProgress(_ rotation: Rotation, now: Date) async throws -> RotationProgress {
        try await read { db in
            let devices =
                try db.fetchScalar(Int.self, sql: "SELECT COUNT(*) FROM devices WHERE group_name = ? AND state = 'enrolled'",
                    arguments: [rotation.group]) ?? 0
            let renewed =
                try db.fetchScalar(Int.self, sql: """
                        SELECT COUNT(*) FROM devices WHERE group_name = ? AND state = 'enrolled' AND EXISTS (
                            SELECT 1 FROM certificates WHERE certificates.device_id = devices.id
                            AND certificates.created_at >= ?)
                        """,
                    arguments: [rotation.group, rotation.startedAt.unixMilliseconds]) ?? 0
            let elapsed = max(0, now.timeIntervalSince(rotation.startedAt))
            let asked = min(devices, Int(elapsed / 60 * Double(rotation.perMinute)) + 1)
            return RotationProgress(devices: devices, renewed: renewed, asked: asked)
        }
    }

    /// How many devices of the group have a smaller ID: the device's 0-based slot in the rotation.
    public func rotationPosition(deviceID: String, group: String) async throws -> Int {
        try await read { db in
            try db.fetchScalar(Int.self, sql: "SELECT COUNT(*) FROM devices WHERE group_name = ? AND id < ?", arguments: [group, deviceID])
                ?? 0
        }
    }
}
