import Crypto
public import Foundation
import GRDB
public import KeygateDomain
import KeygatePKI

extension SQLiteStore: AuditStore {
    /// Chains `draft` onto the log, timestamped now, in its own transaction; returns the stored entry.
    public func appendAudit(_ draft: AuditEvent.Draft) async throws -> AuditEvent {
        try await write { db in try Self.appendAudit(draft, at: Date(), in: db) }
    }

    /// Chains `draft` onto the log inside the caller's write transaction.
    static func appendAudit(_ draft: AuditEvent.Draft, at date: Date, in db: Database) throws -> AuditEvent {
        let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        let sequence: Int64 = (last?["seq"] ?? 0) + 1
        let previous: String = last?["hash"] ?? AuditEvent.genesisHash
        let at = date.unixMilliseconds
        let hash = chainHash(
            previous: previous, sequence: sequence, atMilliseconds: at, actor: draft.actor, action: draft.action,
            subject: draft.subject, details: draft.details)
        let details = String(decoding: try JSONEncoder.sorted.encode(draft.details), as: UTF8.self)
        try db.execute(
            sql: """
                INSERT INTO audit_events (seq, at_ms, actor, action, subject, details, previous_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [sequence, at, draft.actor, draft.action, draft.subject, details, previous, hash])
        return AuditEvent(
            sequence: sequence, at: Date(unixMilliseconds: at), actor: draft.actor, action: draft.action,
            subject: draft.subject, details: draft.details, previousHash: previous, hash: hash)
    }

    static func chainHash(
        previous: String, sequence: Int64, atMilliseconds: Int64, actor: String, action: String, subject: String,
        details: [String: String]
    ) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(previous.utf8))
        hasher.update(
            data: AuditEvent.canonicalBytes(
                sequence: sequence, atMilliseconds: atMilliseconds, actor: actor, action: action, subject: subject,
                details: details))
        return hasher.finalize().withUnsafeBytes { Hex.encode(Array($0)) }
    }

    /// The newest `limit` entries (clamped to 1...10,000) matching the optional `subject` and `since`, oldest first.
    public func auditEvents(subject: String?, since: Date?, limit: Int) async throws -> [AuditEvent] {
        try await read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let subject {
                clauses.append("subject = ?")
                arguments += [subject]
            }
            if let since {
                clauses.append("at_ms >= ?")
                arguments += [since.unixMilliseconds]
            }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments += [max(1, min(limit, 10_000))]
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT * FROM (SELECT * FROM audit_events \(whereClause) ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                arguments: arguments)
            return try rows.map(Self.auditEvent)
        }
    }

    /// Recomputes every hash from the genesis hash; returns the first break, or `nil` when the chain is intact.
    public func verifyAuditChain() async throws -> AuditChainBreak? {
        try await read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM audit_events ORDER BY seq")
            var previous = AuditEvent.genesisHash
            var expected: Int64 = 1
            while let row = try rows.next() {
                let sequence: Int64 = row["seq"]
                guard sequence == expected else {
                    return AuditChainBreak(sequence: expected, reason: "entry \(expected) is missing")
                }
                guard let event = try? Self.auditEvent(row) else {
                    return AuditChainBreak(sequence: sequence, reason: "entry \(sequence) cannot be read")
                }
                guard event.previousHash == previous else {
                    return AuditChainBreak(
                        sequence: sequence, reason: "entry \(sequence) does not link to its predecessor")
                }
                let hash = SQLiteStore.chainHash(
                    previous: previous, sequence: sequence, atMilliseconds: row["at_ms"], actor: event.actor,
                    action: event.action, subject: event.subject, details: event.details)
                guard hash == event.hash else {
                    return AuditChainBreak(sequence: sequence, reason: "entry \(sequence) was altered (hash mismatch)")
                }
                previous = event.hash
                expected += 1
            }
            return nil
        }
    }

    static func auditEvent(_ row: Row) throws -> AuditEvent {
        let detailsText: String = row["details"]
        let details = try JSONDecoder().decode([String: String].self, from: Data(detailsText.utf8))
        return AuditEvent(
            sequence: row["seq"], at: Date(unixMilliseconds: row["at_ms"]), actor: row["actor"], action: row["action"],
            subject: row["subject"], details: details, previousHash: row["previous_hash"], hash: row["hash"])
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
