public import Foundation
public import KeygateDomain
import KeygatePKI
import KeygateStore

/// Admin API tokens: created (the text shown once, only its hash kept), listed, revoked. Every change
/// is audited with the actor.
public struct TokenService: Sendable {
    let store: any ServerStore

    /// Creates a token named `name` with `role`, expiring after `lifetime` (`nil`: never). Answers the
    /// record and the token text, which is not kept. `conflict` when a usable token has the name.
    public func create(name: String, role: AdminToken.Role, lifetime: TimeInterval?, actor: String, now: Date = Date())
        async throws -> (AdminToken, text: String)
    {
        guard AdminToken.isValidName(name) else {
            throw KeygateError(.malformedInput, "a token name is 1 to 64 letters, digits, - _ and .")
        }
        if let lifetime, !(60...(10 * 365 * 86_400)).contains(lifetime) {
            throw KeygateError(.malformedInput, "a token lives 60 seconds to 10 years")
        }
        let text = AdminTokenSecret.generate()
        let token = AdminToken(
            name: name, hash: AdminTokenSecret.hash(text), createdAt: now, role: role,
            expiresAt: lifetime.map { now + $0 })
        var details = ["role": role.rawValue]
        if let expiresAt = token.expiresAt { details["expiresAt"] = ISO8601DateFormatter().string(from: expiresAt) }
        try await store.addAdminToken(
            token, audit: .init(actor: actor, action: "token.created", subject: name, details: details))
        return (token, text)
    }

    /// Every token, oldest first (never their text).
    public func list() async throws -> [AdminToken] { try await store.adminTokens() }

    /// Revokes the usable tokens named `name`; they are refused from now on.
    public func revoke(name: String, actor: String, now: Date = Date()) async throws {
        try await store.revokeAdminToken(
            name: name, at: now, audit: .init(actor: actor, action: "token.revoked", subject: name))
    }
}
