public import Foundation
public import KeygateDomain
import KeygatePKI

/// Connectors and the outbox of Azure changes.
extension DatabaseStore: ConnectorStore {
    // MARK: Connectors

    /// Stores the connector and its audit event in one transaction; throws `connectorExists` for a taken name.
    public func addConnector(_ connector: Connector, audit: AuditEvent.Draft) async throws {
        let settings = try Self.encode(connector.settings)
        let secrets = try Self.encode(connector.sealedSecrets)
        try await write { db in
            guard
                try db.fetchScalar(Bool.self, sql: "SELECT 1 FROM connectors WHERE name = ?", arguments: [connector.name])
                    == nil
            else { throw KeygateError(.connectorExists, "a connector named \(connector.name) exists") }
            try db.execute(
                sql: "INSERT INTO connectors (name, kind, settings, sealed_secrets, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    connector.name, connector.kind.rawValue, settings, secrets, connector.createdAt.unixMilliseconds,
                ])
            _ = try self.appendAudit(audit, at: Date(), in: db)
        }
    }

    /// Replaces the connector's settings (no audit event); an unknown name changes nothing.
    public func updateConnectorSettings(name: String, settings: Connector.Settings) async throws {
        let encoded = try Self.encode(settings)
        try await writeAtomic { db in
            try db.execute(sql: "UPDATE connectors SET settings = ? WHERE name = ?", arguments: [encoded, name])
        }
    }

    /// Replaces the connector's settings and appends the audit event, in one transaction.
    public func updateConnectorSettings(name: String, settings: Connector.Settings, audit: AuditEvent.Draft)
        async throws
    {
        let encoded = try Self.encode(settings)
        try await write { db in
            try db.execute(sql: "UPDATE connectors SET settings = ? WHERE name = ?", arguments: [encoded, name])
            guard db.changesCount == 1 else { throw KeygateError(.connectorNotFound, "no connector \(name)") }
            _ = try self.appendAudit(audit, at: Date(), in: db)
        }
    }

    /// Replaces a connector's sealed secrets and appends the audit event, in one transaction.
    public func updateConnectorSecrets(name: String, sealedSecrets: [String: String], audit: AuditEvent.Draft)
        async throws
    {
        let encoded = try Self.encode(sealedSecrets)
        try await write { db in
            try db.execute(sql: "UPDATE connectors SET sealed_secrets = ? WHERE name = ?", arguments: [encoded, name])
            _ = try self.appendAudit(audit, at: Date(), in: db)
        }
    }

    /// The connector with this name, or `nil`.
    public func connector(named name: String) async throws -> Connector? {
        try await read { db in
            try db.fetchOne(sql: "SELECT * FROM connectors WHERE name = ?", arguments: [name]).map(Self.connector)
        }
    }

    /// Every connector, by name.
    public func connectors() async throws -> [Connector] {
        try await read { db in try db.fetchAll(sql: "SELECT * FROM connectors ORDER BY name").map(Self.connector) }
    }

    /// Deletes the connector and appends the audit event in one transaction.
    ///
    /// Throws `connectorInUse` while a group names it and `connectorNotFound` for an unknown name.
    public func removeConnector(name: String, audit: AuditEvent.Draft) async throws {
        try await write { db in
            let groups = try db.fetchAll(sql: "SELECT * FROM groups").map(Self.group)
            if let user = groups.first(where: { $0.policy.connector == name }) {
                throw KeygateError(.connectorInUse, "group \(user.name) uses the connector \(name)")
            }
            try db.execute(sql: "DELETE FROM connectors WHERE name = ?", arguments: [name])
            guard db.changesCount == 1 else { throw KeygateError(.connectorNotFound, "no connector \(name)") }
            _ = try self.appendAudit(audit, at: Date(), in: db)
        }
    }

    static func connector(_ row: SQLRow) throws -> Connector {
        let settings: String = row["settings"]
        let secrets: String = row["sealed_secrets"]
        guard let kind = Connector.Kind(rawValue: row["kind"]) else {
            throw KeygateError(.internalError, "a stored connector has an unknown kind")
        }
        return Connector(
            name: row["name"], kind: kind,
            settings: try JSONDecoder().decode(Connector.Settings.self, from: Data(settings.utf8)),
            sealedSecrets: try JSONDecoder().decode([String: String].self, from: Data(secrets.utf8)),
            createdAt: Date(unixMilliseconds: row["created_at"]))
    }

    // MARK: Outbox

    static func insertOutbox(_ item: OutboxItem, in db: any SQLSession) throws {
        try db.execute(
            sql: """
                INSERT INTO outbox (connector, device_id, action, certificate, previous_certificate, state, attempts,
                    next_attempt_at, last_error, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL, ?, ?)
                """,
            arguments: [
                item.connector, item.deviceID, item.action.rawValue, item.certificate, item.previousCertificate,
                OutboxItem.State.pending.rawValue, item.nextAttemptAt.unixMilliseconds, item.createdAt.unixMilliseconds,
                item.createdAt.unixMilliseconds,
            ])
    }

    /// Queues `item` as `pending`, with its audit event if any, in one transaction.
    public func enqueue(_ item: OutboxItem, audit: AuditEvent.Draft?) async throws {
        try await write { db in
            try Self.insertOutbox(item, in: db)
            if let audit { _ = try self.appendAudit(audit, at: Date(), in: db) }
        }
    }

    /// Pending items that are due, oldest first, at most one per device (a device's changes go in order).
    public func dueOutboxItems(now: Date, limit: Int) async throws -> [OutboxItem] {
        try await read { db in
            try db.fetchAll(sql: """
                    SELECT * FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= ?
                    AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.device_id = o.device_id AND p.state = 'pending' AND p.id < o.id)
                    ORDER BY o.next_attempt_at, o.id LIMIT ?
                    """,
                arguments: [now.unixMilliseconds, limit]
            ).map(Self.outboxItem)
        }
    }

    /// Leases up to `limit` due items (oldest first, one per device, none leased by a node now) to
    /// `node` until `now + leaseFor`. On PostgreSQL, rows another node is claiming are skipped
    /// (`FOR UPDATE SKIP LOCKED`); SQLite's single writer does the same.
    public func claimOutboxItems(now: Date, limit: Int, node: String, leaseFor: TimeInterval) async throws
        -> [OutboxItem]
    {
        let now = now.unixMilliseconds
        let until = now + Int64(leaseFor * 1000)
        return try await writeAtomic { db in
            let ids = try db.fetchAll(
                sql: """
                    SELECT o.id FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= ? AND o.leased_until <= ?
                    AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.device_id = o.device_id AND p.state = 'pending' AND p.id < o.id)
                    ORDER BY o.next_attempt_at, o.id LIMIT ?
                    """ + (db.locksRows ? " FOR UPDATE OF o SKIP LOCKED" : ""),
                arguments: [now, now, limit]
            ).map { $0["id"] as Int64 }
            guard !ids.isEmpty else { return [] }
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
            var arguments: SQLArguments = [node, until]
            arguments += ids.map { $0 as any SQLBindable }
            // Read before the lease is taken: an item another node held (its lease ran out) is resumed.
            var items = try db.fetchAll(
                sql: "SELECT * FROM outbox WHERE id IN (\(marks)) ORDER BY next_attempt_at, id",
                arguments: ids.map { $0 as any SQLBindable }
            ).map(Self.outboxItem)
            let resumed = Set(
                try db.fetchAll(
                    sql: "SELECT id FROM outbox WHERE id IN (\(marks)) AND leased_by IS NOT NULL",
                    arguments: ids.map { $0 as any SQLBindable }
                ).map { $0["id"] as Int64 })
            for index in items.indices where resumed.contains(items[index].id) { items[index].resumed = true }
            try db.execute(
                sql: "UPDATE outbox SET leased_by = ?, leased_until = ? WHERE id IN (\(marks))", arguments: arguments)
            return items
        }
    }

    /// Clears the leases `node` holds on these items.
    public func releaseOutboxItems(ids: [Int64], node: String) async throws {
        guard !ids.isEmpty else { return }
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            let arguments: SQLArguments = [node] + chunk.map { $0 as any SQLBindable }
            try await writeAtomic { db in
                try db.execute(
                    sql: "UPDATE outbox SET leased_by = NULL, leased_until = 0 WHERE leased_by = ? AND id IN (\(marks))",
                    arguments: arguments)
            }
            start += chunk.count
        }
    }

    /// Marks the item `delivered`, clears its last error and its lease.
    public func completeOutboxItem(id: Int64, at date: Date) async throws {
        try await writeAtomic { db in
            try db.execute(
                sql:
                    "UPDATE outbox SET state = 'delivered', last_error = NULL, leased_by = NULL, leased_until = 0, updated_at = ? WHERE id = ?",
                arguments: [date.unixMilliseconds, id])
        }
    }

    /// Counts a failed delivery: records the error (first 1,000 characters) and the next attempt time, and
    /// moves the item to `deadLetter` when `deadLetter` is set; appends `audit` if given, in the same transaction.
    public func failOutboxItem(
        id: Int64, error: String, nextAttemptAt: Date, deadLetter: Bool, audit: AuditEvent.Draft?
    )
        async throws
    {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, state = ?, updated_at = ?,
                        leased_by = NULL, leased_until = 0
                    WHERE id = ?
                    """,
                arguments: [
                    String(error.prefix(1000)), nextAttemptAt.unixMilliseconds,
                    (deadLetter ? OutboxItem.State.deadLetter : .pending).rawValue, Date().unixMilliseconds, id,
                ])
            if let audit { _ = try self.appendAudit(audit, at: Date(), in: db) }
        }
    }

    /// Items in `state` for `deviceID` (`nil`: any), newest first, at most `limit`.
    public func outboxItems(state: OutboxItem.State?, deviceID: String?, limit: Int) async throws -> [OutboxItem] {
        try await read { db in
            var conditions: [String] = []
            var arguments: SQLArguments = []
            if let state {
                conditions.append("state = ?")
                arguments.append(state.rawValue)
            }
            if let deviceID {
                conditions.append("device_id = ?")
                arguments.append(deviceID)
            }
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            arguments.append(limit)
            return try db.fetchAll(sql: "SELECT * FROM outbox \(filter) ORDER BY id DESC LIMIT ?",
                arguments: arguments
            ).map(Self.outboxItem)
        }
    }

    /// Items per state; states with none are absent.
    public func outboxCounts() async throws -> [OutboxItem.State: Int] {
        try await read { db in
            var counts: [OutboxItem.State: Int] = [:]
            for row in try db.fetchAll(sql: "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state") {
                if let state = OutboxItem.State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// Puts a dead letter back in the queue (due now, attempts reset) and appends the audit event.
    ///
    /// Throws `outboxItemNotFound` for an unknown ID and `conflict` when the item is delivered.
    public func retryOutboxItem(id: Int64, audit: AuditEvent.Draft) async throws -> OutboxItem {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?
                    WHERE id = ? AND state = 'deadLetter'
                    """,
                arguments: [Date().unixMilliseconds, Date().unixMilliseconds, id])
            guard let row = try db.fetchOne(sql: "SELECT * FROM outbox WHERE id = ?", arguments: [id]) else {
                throw KeygateError(.outboxItemNotFound, "no outbox item \(id)")
            }
            guard db.changesCount == 1 || (row["state"] as String) == "pending" else {
                throw KeygateError(.conflict, "outbox item \(id) is \(row["state"] as String), not a dead letter")
            }
            _ = try self.appendAudit(audit, at: Date(), in: db)
            return try Self.outboxItem(row)
        }
    }

    /// Whether the device's latest enrollment change reached Azure; `nil` when it has none.
    public func enrollmentConfirmed(deviceID: String) async throws -> Bool? {
        try await read { db in
            guard
                let state = try db.fetchScalar(String.self, sql:
                        "SELECT state FROM outbox WHERE device_id = ? AND action IN ('enroll', 'enable') ORDER BY id DESC LIMIT 1",
                    arguments: [deviceID])
            else { return nil }
            return state == OutboxItem.State.delivered.rawValue
        }
    }

    static func outboxItem(_ row: SQLRow) throws -> OutboxItem {
        guard let action = OutboxItem.Action(rawValue: row["action"]),
            let state = OutboxItem.State(rawValue: row["state"])
        else { throw KeygateError(.internalError, "a stored outbox item has an unknown action or state") }
        return OutboxItem(
            id: row["id"], connector: row["connector"], deviceID: row["device_id"], action: action,
            certificate: row["certificate"], previousCertificate: row["previous_certificate"], state: state,
            attempts: row["attempts"], nextAttemptAt: Date(unixMilliseconds: row["next_attempt_at"]),
            lastError: row["last_error"], createdAt: Date(unixMilliseconds: row["created_at"]),
            updatedAt: Date(unixMilliseconds: row["updated_at"]))
    }
}
