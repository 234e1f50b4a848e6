import Foundation
import GRDB
public import KeygateDomain

extension SQLiteStore: AdminTokenStore {
    /// Stores the token's hash and name, with its audit event, in one transaction.
    public func addAdminToken(_ token: AdminToken, audit: AuditEvent.Draft) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO admin_tokens (hash, name, created_at) VALUES (?, ?, ?)",
                arguments: [token.hash, token.name, token.createdAt.unixMilliseconds])
            _ = try Self.appendAudit(audit, at: token.createdAt, in: db)
        }
    }

    /// The token stored under `hash` (see ``AdminTokenSecret/hash(_:)``), or `nil`.
    public func adminToken(hash: String) async throws -> AdminToken? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM admin_tokens WHERE hash = ?", arguments: [hash]).map {
                AdminToken(name: $0["name"], hash: $0["hash"], createdAt: Date(unixMilliseconds: $0["created_at"]))
            }
        }
    }
}
