public import Foundation

extension DatabaseStore: ClusterStore {
    /// Moves the task's `last_run` to `now` when it is at least `interval` (less 10 %, for clock drift
    /// between nodes) old, in one atomic upsert; true when this call moved it.
    public func claimPeriodicRun(task: String, interval: TimeInterval, now: Date, node: String) async throws -> Bool {
        let now = now.unixMilliseconds
        let due = now - Int64(interval * 900)
        return try await writeAtomic { db in
            try db.execute(
                sql: """
                    INSERT INTO periodic_runs (task, last_run, node) VALUES (?, ?, ?)
                    ON CONFLICT (task) DO UPDATE SET last_run = excluded.last_run, node = excluded.node
                    WHERE periodic_runs.last_run <= ?
                    """,
                arguments: [task, now, node, due]) == 1
        }
    }

    /// The certificates whose status changed after revision `after`, oldest change first.
    public func statusChanges(issuer: String, after: Int64, limit: Int) async throws -> [StatusChange] {
        let rows = try await read { db in
            try db.fetchAll(
                sql: """
                    SELECT serial, status_revision FROM certificates WHERE issuer = ? AND status_revision > ?
                    ORDER BY status_revision, serial LIMIT ?
                    """,
                arguments: [issuer, after, max(1, limit)])
        }
        let changes = rows.map { row -> StatusChange in
            let revision: Int64 = row["status_revision"]
            return StatusChange(
                serial: row["serial"], revision: revision, local: ownRevisions.contains(issuer: issuer, revision))
        }
        if let last = changes.last?.revision { ownRevisions.forget(issuer: issuer, through: last) }
        return changes
    }

    /// Upserts the node's heartbeat and counts the nodes seen within `window`.
    public func heartbeat(node: String, now: Date, window: TimeInterval) async throws -> Int {
        let now = now.unixMilliseconds
        return try await writeAtomic { db in
            try db.execute(
                sql: """
                    INSERT INTO nodes (name, last_seen) VALUES (?, ?)
                    ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen
                    """,
                arguments: [node, now])
            try db.execute(sql: "DELETE FROM nodes WHERE last_seen < ?", arguments: [now - 86_400_000])
            return try db.fetchScalar(
                Int.self, sql: "SELECT COUNT(*) FROM nodes WHERE last_seen >= ?",
                arguments: [now - Int64(window * 1000)]) ?? 1
        }
    }

    /// Every issuer's revocation revision.
    public func revocationRevisions() async throws -> [String: Int64] {
        try await read { db in
            var revisions: [String: Int64] = [:]
            for row in try db.fetchAll(sql: "SELECT issuer, revocation_revision FROM issuers") {
                revisions[row["issuer"]] = row["revocation_revision"]
            }
            return revisions
        }
    }
}
