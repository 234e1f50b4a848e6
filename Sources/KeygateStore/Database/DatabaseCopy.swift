import Foundation
import KeygateDomain
import KeygatePKI

/// Moves a deployment's data from one database to another (`keygate db copy`): every table, row by
/// row with its values as they are, so the audit chain verifies on the other side unchanged.
public enum DatabaseCopy {
    /// The tables, in an order that needs nothing not yet copied, each with the column that orders it.
    static let tables: [(name: String, key: String)] = [
        ("audit_events", "seq"), ("issuers", "issuer"), ("crls", "issuer, number"), ("admin_tokens", "hash"),
        ("groups", "name"), ("connectors", "name"), ("devices", "id"), ("ddk_keys", "device_id, epoch"),
        ("challenges", "id"), ("certificates", "serial"), ("outbox", "id"), ("rotations", "group_name"),
        ("periodic_runs", "task"),
    ]

    /// Rows per table, for progress and for the check after the copy.
    public static func counts(_ store: DatabaseStore) async throws -> [String: Int] {
        try await store.read { db in
            var counts: [String: Int] = [:]
            for table in tables {
                counts[table.name] = try db.fetchScalar(Int.self, sql: "SELECT COUNT(*) FROM \(table.name)") ?? 0
            }
            return counts
        }
    }

    /// Copies every row of `source` into `destination`, which must hold no deployment (no audit entry,
    /// no device, no certificate). Calls `progress` with the rows copied so far. Returns the counts,
    /// checked equal on both sides.
    @discardableResult
    public static func copy(
        from source: DatabaseStore, to destination: DatabaseStore, batch: Int = 500,
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> [String: Int] {
        let existing = try await counts(destination)
        if let (table, count) = existing.first(where: { $0.value > 0 && $0.key != "periodic_runs" }) {
            throw KeygateError(
                .databaseNotEmpty, "the destination already holds data (\(count) rows in \(table)); copy into an empty database")
        }
        var copied = 0
        for table in tables {
            var offset = 0
            while true {
                let start = offset
                let rows = try await source.read { db in
                    try db.fetchAll(
                        sql: "SELECT * FROM \(table.name) ORDER BY \(table.key) LIMIT ? OFFSET ?",
                        arguments: [batch, start])
                }
                guard let first = rows.first else { break }
                let columns = first.names
                let marks = "(" + Array(repeating: "?", count: columns.count).joined(separator: ",") + ")"
                let sql = "INSERT INTO \(table.name) (\(columns.joined(separator: ", "))) VALUES \(marks)"
                try await destination.write { db in
                    for row in rows {
                        try db.execute(sql: sql, arguments: row.values.map { SQLValueArgument(value: $0) })
                    }
                }
                copied += rows.count
                offset += rows.count
                progress(copied)
            }
        }
        // The outbox's identity column continues after the copied IDs.
        try await destination.write { db in
            if db.locksRows {
                try db.execute(
                    sql: "SELECT setval(pg_get_serial_sequence('outbox', 'id'), GREATEST((SELECT MAX(id) FROM outbox), 1))")
            }
        }
        let before = try await counts(source)
        let after = try await counts(destination)
        guard before == after else {
            throw KeygateError(.internalError, "row counts differ after the copy: \(before) versus \(after)")
        }
        return after
    }
}

/// A stored value bound again as it is.
struct SQLValueArgument: SQLBindable {
    let value: SQLValue
    var sqlValue: SQLValue { value }
}
