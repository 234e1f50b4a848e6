import Crypto
public import Foundation
public import KeygateDomain
import KeygatePKI

extension DatabaseStore: AuditStore {
    /// Chains `draft` onto the log, timestamped now, in its own transaction; returns the stored entry.
    public func appendAudit(_ draft: AuditEvent.Draft) async throws -> AuditEvent {
        try await write { db in try self.appendAudit(draft, at: Date(), in: db) }
    }

    /// Keys the chain from now on (or from where `key` says): every later append uses it.
    public func useAuditKey(_ key: AuditChainKey) { auditKey.set(key) }

    /// The newest entry's sequence number and hash; `(0, genesis)` for an empty log.
    public func auditHead() async throws -> AuditCheckpoint {
        try await read { db in
            let last = try db.fetchOne(sql: "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            return AuditCheckpoint(
                sequence: last?["seq"] ?? 0, hash: last?["hash"] ?? AuditEvent.genesisHash,
                atMilliseconds: Date().unixMilliseconds)
        }
    }

    /// Chains `draft` onto the log inside the caller's write transaction, with the store's key.
    func appendAudit(_ draft: AuditEvent.Draft, at date: Date, in db: any SQLSession) throws -> AuditEvent {
        try Self.appendAudit(draft, at: date, key: auditKey.current, in: db)
    }

    /// Chains `draft` onto the log inside the caller's write transaction.
    static func appendAudit(_ draft: AuditEvent.Draft, at date: Date, key: AuditChainKey?, in db: any SQLSession) throws
        -> AuditEvent
    {
        var head = try AuditHead(db)
        return try head.append(draft, at: date, key: key, in: db)
    }

    /// The chain's head inside one write transaction: read once, then advanced by each append, so a
    /// batch of entries (group commit) does not query the newest entry again for each.
    struct AuditHead {
        var sequence: Int64
        var hash: String

        init(_ db: any SQLSession) throws {
            let last = try db.fetchOne(sql: "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            sequence = last?["seq"] ?? 0
            hash = last?["hash"] ?? AuditEvent.genesisHash
        }

        mutating func append(_ draft: AuditEvent.Draft, at date: Date, key: AuditChainKey?, in db: any SQLSession) throws
            -> AuditEvent
        {
            try append([(draft, date)], key: key, in: db)[0]
        }

        /// Chains the entries in order, written with multi-row inserts of at most 64 rows.
        mutating func append(_ drafts: [(AuditEvent.Draft, Date)], key: AuditChainKey?, in db: any SQLSession) throws
            -> [AuditEvent]
        {
            var events: [AuditEvent] = []
            events.reserveCapacity(drafts.count)
            var values: SQLArguments = []
            func flush() throws {
                guard !values.isEmpty else { return }
                let rows = values.count / 8
                try db.execute(
                    sql:
                        "INSERT INTO audit_events (seq, at_ms, actor, action, subject, details, previous_hash, hash) VALUES "
                        + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", "),
                    arguments: values)
                values.removeAll(keepingCapacity: true)
            }
            for (draft, date) in drafts {
                let sequence = self.sequence + 1
                let previous = hash
                let at = date.unixMilliseconds
                let hash = AuditChainKey.chainHash(
                    key, previous: previous, sequence: sequence, atMilliseconds: at, actor: draft.actor,
                    action: draft.action, subject: draft.subject, details: draft.details)
                values += [
                    sequence, at, draft.actor, draft.action, draft.subject, AuditDetailsJSON.encode(draft.details),
                    previous, hash,
                ] as SQLArguments
                self.sequence = sequence
                self.hash = hash
                events.append(
                    AuditEvent(
                        sequence: sequence, at: Date(unixMilliseconds: at), actor: draft.actor, action: draft.action,
                        subject: draft.subject, details: draft.details, previousHash: previous, hash: hash))
                if values.count >= 64 * 8 { try flush() }
            }
            try flush()
            return events
        }
    }

    /// Entries after sequence number `after`, oldest first, at most `limit` (1...10,000): for exports.
    public func auditEvents(after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await read { db in
            try db.fetchAll(sql: "SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
                arguments: [after, max(1, min(limit, 10_000))]
            ).map(Self.auditEvent)
        }
    }

    /// The newest `limit` entries (clamped to 1...10,000) matching the optional `subject` and `since`, oldest first.
    public func auditEvents(subject: String?, since: Date?, limit: Int) async throws -> [AuditEvent] {
        try await read { db in
            var clauses: [String] = []
            var arguments: SQLArguments = []
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
            let rows = try db.fetchAll(sql:
                    "SELECT * FROM (SELECT * FROM audit_events \(whereClause) ORDER BY seq DESC LIMIT ?) AS recent ORDER BY seq",
                arguments: arguments)
            return try rows.map(Self.auditEvent)
        }
    }

    /// Recomputes every hash from the genesis hash (keyed from the key's `keyedFrom`), then checks
    /// `checkpoints` against the log: a checkpoint whose signature fails, an entry whose hash differs
    /// from a checkpoint's (history rewritten) or a log that ends before the newest checkpoint
    /// (truncated). Returns the first problem, or `nil` when all holds.
    public func verifyAuditChain(checkpoints: [AuditCheckpoint]) async throws -> AuditChainBreak? {
        let key = auditKey.current
        return try await read { db in
            let rows = try db.fetchAll(sql: "SELECT * FROM audit_events ORDER BY seq")
            var previous = AuditEvent.genesisHash
            var expected: Int64 = 1
            var hashes: [Int64: String] = [:]
            let wanted = Set(checkpoints.map(\.sequence))
            for row in rows {
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
                let hash = AuditChainKey.chainHash(
                    key, previous: previous, sequence: sequence, atMilliseconds: row["at_ms"], actor: event.actor,
                    action: event.action, subject: event.subject, details: event.details)
                guard hash == event.hash else {
                    let keyed = key.map { sequence >= $0.keyedFrom } ?? false
                    return AuditChainBreak(
                        sequence: sequence,
                        reason: keyed
                            ? "entry \(sequence) was altered or its chain recomputed without the audit key (MAC mismatch)"
                            : "entry \(sequence) was altered (hash mismatch)")
                }
                if wanted.contains(sequence) { hashes[sequence] = hash }
                previous = event.hash
                expected += 1
            }
            let head = expected - 1
            for checkpoint in checkpoints.sorted(by: { $0.sequence < $1.sequence }) {
                if let key, !key.verify(checkpoint) {
                    return AuditChainBreak(
                        sequence: checkpoint.sequence,
                        reason: "the checkpoint at entry \(checkpoint.sequence) is not signed with the audit key")
                }
                if checkpoint.sequence > head {
                    return AuditChainBreak(
                        sequence: head + 1,
                        reason:
                            "the log was truncated: it ends at entry \(head), but a checkpoint saw entry \(checkpoint.sequence)"
                    )
                }
                if checkpoint.sequence > 0, hashes[checkpoint.sequence] != checkpoint.hash {
                    return AuditChainBreak(
                        sequence: checkpoint.sequence,
                        reason: "entry \(checkpoint.sequence) differs from its checkpoint: history was rewritten")
                }
            }
            return nil
        }
    }

    static func auditEvent(_ row: SQLRow) throws -> AuditEvent {
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

/// The JSON object of an entry's details, keys sorted: what `JSONEncoder` with sorted keys writes,
/// without its machinery (it showed in issuance profiles).
enum AuditDetailsJSON {
    static func encode(_ details: [String: String]) -> String {
        var out = "{"
        for (index, key) in details.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            append(key, to: &out)
            out += ":"
            append(details[key]!, to: &out)
        }
        return out + "}"
    }

    private static func append(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
