public import Foundation
import KeygatePKI
public import KeygateDomain

extension DatabaseStore: AdminTokenStore {
    /// Stores the token's hash and name, with its audit event, in one transaction.
    public func addAdminToken(_ token: AdminToken, audit: AuditEvent.Draft) async throws {
        try await write { db in
            let now = Date().unixMilliseconds
            let taken = try db.fetchScalar(Bool.self, sql: """
                    SELECT 1 FROM admin_tokens WHERE name = ? AND revoked_at IS NULL
                    AND (expires_at IS NULL OR expires_at > ?)
                    """,
                arguments: [token.name, now]) ?? false
            guard !taken else { throw KeygateError(.conflict, "a usable token named \(token.name) exists") }
            try db.execute(
                sql:
                    "INSERT INTO admin_tokens (hash, name, created_at, role, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    token.hash, token.name, token.createdAt.unixMilliseconds, token.role.rawValue,
                    token.expiresAt?.unixMilliseconds,
                ])
            _ = try self.appendAudit(audit, at: token.createdAt, in: db)
        }
    }

    /// The token stored under `hash` (see ``AdminTokenSecret/hash(_:)``), or `nil`.
    public func adminToken(hash: String) async throws -> AdminToken? {
        try await read { db in
            try db.fetchOne(sql: "SELECT * FROM admin_tokens WHERE hash = ?", arguments: [hash]).map(
                Self.adminToken)
        }
    }

    /// Every token, oldest first.
    public func adminTokens() async throws -> [AdminToken] {
        try await read { db in
            try db.fetchAll(sql: "SELECT * FROM admin_tokens ORDER BY created_at, name").map(Self.adminToken)
        }
    }

    /// Revokes the usable tokens named `name`, with the audit event, in one transaction.
    public func revokeAdminToken(name: String, at date: Date, audit: AuditEvent.Draft) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE admin_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                arguments: [date.unixMilliseconds, name])
            guard db.changesCount > 0 else { throw KeygateError(.tokenNotFound, "no usable token named \(name)") }
            _ = try self.appendAudit(audit, at: date, in: db)
        }
    }

    static func adminToken(_ row: SQLRow) -> AdminToken {
        AdminToken(
            name: row["name"], hash: row["hash"], createdAt: Date(unixMilliseconds: row["created_at"]),
            role: AdminToken.Role(rawValue: row["role"]) ?? .readOnly,
            expiresAt: (row["expires_at"] as Int64?).map(Date.init(unixMilliseconds:)),
            revokedAt: (row["revoked_at"] as Int64?).map(Date.init(unixMilliseconds:)))
    }
}
