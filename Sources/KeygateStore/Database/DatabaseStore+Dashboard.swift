public import Foundation
public import KeygateDomain

extension DatabaseStore: DashboardStore {
    public func createDashboardSession(_ session: DashboardSession) async throws {
        try await writeAtomic { db in
            try db.execute(
                sql: "DELETE FROM ui_sessions WHERE expires_at < ?", arguments: [session.createdAt.unixMilliseconds])
            try db.execute(
                sql: "INSERT INTO ui_sessions (id_hash, token_hash, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    session.idHash, session.tokenHash, session.csrf, session.createdAt.unixMilliseconds,
                    session.expiresAt.unixMilliseconds,
                ])
        }
    }

    public func dashboardSession(idHash: String, now: Date) async throws -> DashboardSession? {
        try await read { db in
            try db.fetchOne(
                sql: "SELECT * FROM ui_sessions WHERE id_hash = ? AND expires_at > ?",
                arguments: [idHash, now.unixMilliseconds]
            ).map { row in
                DashboardSession(
                    idHash: row["id_hash"], tokenHash: row["token_hash"], csrf: row["csrf"],
                    createdAt: Date(unixMilliseconds: row["created_at"]),
                    expiresAt: Date(unixMilliseconds: row["expires_at"]))
            }
        }
    }

    public func deleteDashboardSession(idHash: String) async throws {
        try await writeAtomic { db in
            try db.execute(sql: "DELETE FROM ui_sessions WHERE id_hash = ?", arguments: [idHash])
        }
    }

    public func devices(prefix: String?, state: Device.State?, group: String?, after: String?, limit: Int)
        async throws -> [Device]
    {
        try await read { db in
            var clauses: [String] = []
            var arguments: SQLArguments = []
            if let prefix, !prefix.isEmpty {
                // A range on the primary key: device IDs are ASCII, and U+007F sorts after all of them
                // (binary collation on SQLite, "C" on PostgreSQL).
                clauses.append("id >= ? AND id < ?")
                arguments += [prefix, prefix + "\u{7F}"]
            }
            if let state {
                clauses.append("state = ?")
                arguments += [state.rawValue]
            }
            if let group {
                clauses.append("group_name = ?")
                arguments += [group]
            }
            if let after {
                clauses.append("id > ?")
                arguments += [after]
            }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments += [max(1, min(limit, 10_000))]
            return try db.fetchAll(sql: "SELECT * FROM devices \(whereClause) ORDER BY id LIMIT ?", arguments: arguments)
                .map(Self.device)
        }
    }

    public func auditEvents(matching filter: AuditFilter) async throws -> [AuditEvent] {
        try await read { db in
            var clauses: [String] = []
            var arguments: SQLArguments = []
            for (column, value) in [("subject", filter.subject), ("actor", filter.actor), ("action", filter.action)] {
                if let value, !value.isEmpty {
                    clauses.append("\(column) = ?")
                    arguments += [value]
                }
            }
            // By actor or action the index (column, at_ms, seq) gives the newest first without a sort;
            // otherwise the sequence does (the two orders agree but for clock skew between nodes).
            let byTime = filter.actor?.isEmpty == false || filter.action?.isEmpty == false
            if let before = filter.before {
                if byTime {
                    clauses.append(
                        "(at_ms < (SELECT at_ms FROM audit_events WHERE seq = ?) OR (at_ms = (SELECT at_ms FROM audit_events WHERE seq = ?) AND seq < ?))"
                    )
                    arguments += [before, before, before]
                } else {
                    clauses.append("seq < ?")
                    arguments += [before]
                }
            }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            let order = byTime ? "at_ms DESC, seq DESC" : "seq DESC"
            arguments += [max(1, min(filter.limit, 1_000))]
            return try db.fetchAll(
                sql: "SELECT * FROM audit_events \(whereClause) ORDER BY \(order) LIMIT ?", arguments: arguments
            ).map(Self.auditEvent)
        }
    }

    public func activity(actions: [String], since: Date, bucket: Int) async throws -> [String: [Int64: Int]] {
        let bucketMilliseconds = Int64(max(1, bucket)) * 1000
        return try await read { db in
            var result: [String: [Int64: Int]] = [:]
            for action in actions {
                var counts: [Int64: Int] = [:]
                for row in try db.fetchAll(
                    sql:
                        "SELECT at_ms / ? AS bucket, COUNT(*) AS n FROM audit_events WHERE action = ? AND at_ms >= ? GROUP BY bucket",
                    arguments: [bucketMilliseconds, action, since.unixMilliseconds])
                {
                    let index: Int64 = row["bucket"]
                    counts[index * bucketMilliseconds / 1000] = row["n"]
                }
                result[action] = counts
            }
            return result
        }
    }

    public func activeCertificatesExpiring(now: Date, within horizons: [TimeInterval]) async throws -> [Int] {
        try await read { db in
            try horizons.map { horizon in
                try db.fetchScalar(
                    Int.self,
                    sql: "SELECT COUNT(*) FROM certificates WHERE not_after >= ? AND not_after < ? AND status = 'active'",
                    arguments: [now.unixSeconds, (now + horizon).unixSeconds]) ?? 0
            }
        }
    }

    public func certificates(issuer: String, status: CertificateRecord.Status, after: String?, limit: Int)
        async throws -> [CertificateRecord]
    {
        try await read { db in
            var sql = "SELECT * FROM certificates WHERE issuer = ? AND status = ?"
            var arguments: SQLArguments = [issuer, status.rawValue]
            if let after {
                sql += """
                     AND (not_after > (SELECT not_after FROM certificates WHERE serial = ?)
                     OR (not_after = (SELECT not_after FROM certificates WHERE serial = ?) AND serial > ?))
                    """
                arguments += [after, after, after]
            }
            arguments += [max(1, min(limit, 1_000))]
            return try db.fetchAll(sql: sql + " ORDER BY not_after, serial LIMIT ?", arguments: arguments)
                .map(Self.certificateRecord)
        }
    }

    public func outboxHealth() async throws -> [String: OutboxHealth] {
        try await read { db in
            var health: [String: OutboxHealth] = [:]
            for row in try db.fetchAll(
                sql: """
                    SELECT connector, state, CASE WHEN attempts > 0 THEN 1 ELSE 0 END AS retried, COUNT(*) AS n
                    FROM outbox WHERE state IN ('pending', 'deadLetter') GROUP BY connector, state, retried
                    """)
            {
                let connector: String = row["connector"]
                let state: String = row["state"]
                let retried: Bool = row["retried"]
                let count: Int = row["n"]
                var entry = health[connector] ?? OutboxHealth()
                if state == OutboxItem.State.deadLetter.rawValue {
                    entry.deadLetters += count
                } else if retried {
                    entry.retrying += count
                } else {
                    entry.pending += count
                }
                health[connector] = entry
            }
            for row in try db.fetchAll(
                sql: """
                    SELECT connector, last_error, updated_at FROM outbox
                    WHERE state IN ('pending', 'deadLetter') AND last_error IS NOT NULL
                    ORDER BY updated_at DESC LIMIT 200
                    """)
            {
                let connector: String = row["connector"]
                if health[connector]?.lastError == nil {
                    health[connector, default: OutboxHealth()].lastError = row["last_error"]
                    health[connector, default: OutboxHealth()].lastErrorAt = Date(unixMilliseconds: row["updated_at"])
                }
            }
            return health
        }
    }
}
