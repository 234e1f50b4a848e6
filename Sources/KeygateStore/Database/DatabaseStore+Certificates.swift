public import Foundation
public import KeygateDomain
public import KeygatePKI
import X509

extension DatabaseStore: CertificateRecordStore {
    /// Records the certificate and its audit event in one transaction, batched with concurrent issuances.
    ///
    /// Returns once this record is durable; a busy database throws `storeUnavailable`.
    public func insertCertificate(_ record: CertificateRecord, audit: AuditEvent.Draft) async throws {
        try await certificateCommits.insert(record, audit: audit)
    }

    static let certificateColumns =
        "serial, subject, issuer, not_before, not_after, profile, status, revoked_at, revocation_reason, pem, device_id, created_at"

    static func certificateValues(_ record: CertificateRecord) -> SQLArguments {
        [
            record.serial, record.subject, record.issuer, record.notBefore.unixSeconds, record.notAfter.unixSeconds,
            record.profile, record.status.rawValue, record.revokedAt?.unixSeconds, record.revocationReason?.rawValue,
            record.pem, record.deviceID, record.createdAt.unixMilliseconds,
        ]
    }

    static func insertCertificate(_ record: CertificateRecord, in db: any SQLSession) throws {
        try insertCertificates([record], in: db)
    }

    /// Inserts records with multi-row statements of at most 64 rows.
    static func insertCertificates(_ records: [CertificateRecord], in db: any SQLSession) throws {
        var start = 0
        while start < records.count {
            let chunk = records[start..<min(start + 64, records.count)]
            let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            try db.execute(
                sql: "INSERT INTO certificates (\(certificateColumns)) VALUES "
                    + Array(repeating: row, count: chunk.count).joined(separator: ", "),
                arguments: chunk.flatMap(certificateValues))
            start += chunk.count
        }
    }

    /// The record with this serial (lower-case hex), or `nil`.
    public func certificate(serial: String) async throws -> CertificateRecord? {
        try await read { db in
            try db.fetchOne(sql: "SELECT * FROM certificates WHERE serial = ?", arguments: [serial])
                .map(Self.certificateRecord)
        }
    }

    /// The records matching `query`, in creation order, at most `query.limit` (clamped to 1...10,000).
    public func certificates(matching query: CertificateQuery) async throws -> [CertificateRecord] {
        try await read { db in
            var clauses: [String] = []
            var arguments: SQLArguments = []
            if let status = query.status {
                clauses.append("status = ?")
                arguments += [status.rawValue]
            }
            if let device = query.deviceID {
                clauses.append("device_id = ?")
                arguments += [device]
            }
            if let profile = query.profile {
                clauses.append("profile = ?")
                arguments += [profile]
            }
            if let before = query.expiringBefore {
                clauses.append("not_after < ?")
                arguments += [before.unixSeconds]
            }
            if let date = query.unexpiredAt {
                clauses.append("not_after >= ?")
                arguments += [date.unixSeconds]
            }
            if query.unrenewedOnly { clauses.append(Self.unrenewedClause) }
            if let after = query.after {
                clauses.append(
                    """
                    (created_at > (SELECT created_at FROM certificates WHERE serial = ?)
                     OR (created_at = (SELECT created_at FROM certificates WHERE serial = ?) AND serial > ?))
                    """)
                arguments += [after, after, after]
            }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments += [max(1, min(query.limit, 10_000))]
            return try db.fetchAll(sql: "SELECT * FROM certificates \(whereClause) ORDER BY created_at, serial LIMIT ?",
                arguments: arguments
            ).map(Self.certificateRecord)
        }
    }

    /// Revokes or holds the certificate, bumps its issuer's revocation revision and appends the audit event,
    /// in one transaction.
    ///
    /// Throws `certificateNotFound` for an unknown serial and `alreadyRevoked` when
    /// ``CertificateRecord/revoke(reason:at:)`` refuses.
    public func revokeCertificate(
        serial: String, reason: RevocationReason, at date: Date, audit: AuditEvent.Draft
    ) async throws -> CertificateRecord {
        let (record, revision) = try await write { db in
            guard
                var record = try db.fetchOne(sql: "SELECT * FROM certificates WHERE serial = ?", arguments: [serial]
                )
                .map(Self.certificateRecord)
            else {
                throw KeygateError(.certificateNotFound, "no certificate with serial \(serial)")
            }
            try record.revoke(reason: reason, at: date)
            let revision = try Self.bumpRevocationRevision(issuer: record.issuer, in: db)
            try db.execute(
                sql: """
                    UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ?, status_revision = ?
                    WHERE serial = ?
                    """,
                arguments: [record.status.rawValue, record.revokedAt?.unixSeconds, reason.rawValue, revision, serial])
            _ = try self.appendAudit(audit, at: date, in: db)
            return (record, revision)
        }
        ownRevisions.add(issuer: record.issuer, revision)
        return record
    }

    /// Every revoked or held certificate of `issuer` whose `notAfter` is not before `notAfterSince`.
    public func revokedEntries(issuer: String, notAfterSince: Date) async throws -> [RevokedEntry] {
        try await read { db in
            let rows = try db.fetchAll(sql: """
                    SELECT serial, revoked_at, revocation_reason FROM certificates
                    WHERE issuer = ? AND status IN ('revoked', 'onHold') AND not_after >= ?
                    """,
                arguments: [issuer, notAfterSince.unixSeconds])
            var entries: [RevokedEntry] = []
            for row in rows {
                guard let serial = Certificate.SerialNumber(hex: row["serial"]) else { continue }
                let reason = RevocationReason(rawValue: row["revocation_reason"] ?? 0) ?? .unspecified
                entries.append(
                    RevokedEntry(
                        serialNumber: serial, revokedAt: Date(unixSeconds: row["revoked_at"] ?? 0), reason: reason))
            }
            return entries
        }
    }

    /// Certificates per status; statuses with none are absent.
    public func certificateCounts() async throws -> [CertificateRecord.Status: Int] {
        try await read { db in
            var counts: [CertificateRecord.Status: Int] = [:]
            for row in try db.fetchAll(sql: "SELECT status, COUNT(*) AS n FROM certificates GROUP BY status") {
                if let status = CertificateRecord.Status(rawValue: row["status"]) {
                    counts[status] = row["n"]
                }
            }
            return counts
        }
    }

    static func certificateRecord(_ row: SQLRow) -> CertificateRecord {
        CertificateRecord(
            serial: row["serial"], subject: row["subject"], issuer: row["issuer"],
            notBefore: Date(unixSeconds: row["not_before"]), notAfter: Date(unixSeconds: row["not_after"]),
            profile: row["profile"], status: CertificateRecord.Status(rawValue: row["status"]) ?? .revoked,
            revokedAt: (row["revoked_at"] as Int64?).map(Date.init(unixSeconds:)),
            revocationReason: (row["revocation_reason"] as Int?).flatMap(RevocationReason.init(rawValue:)),
            pem: row["pem"], deviceID: row["device_id"], createdAt: Date(unixMilliseconds: row["created_at"]))
    }
}
