import Crypto
import Foundation
import Hummingbird
import KeygateDomain
import KeygatePKI
import KeygateStore

/// Who is looking at a dashboard page: the admin token's name and role, and the session's CSRF token.
struct DashboardViewer: Sendable {
    /// The admin token's name; the audit log names it as the actor of every action.
    var name: String
    /// The token's role, checked against the admin API path each action stands for.
    var role: AdminToken.Role
    /// The token every form of the session carries.
    var csrf: String
    /// The session cookie's hash (sign-out deletes it).
    var sessionHash: String

    /// The audit log's actor for this operator's actions (the same as through the admin API).
    var actor: String { "admin:\(name)" }

    /// Refuses an action the token's role may not take through the admin API.
    func require(_ method: String, _ apiPath: String) throws {
        guard role.allows(method: method, path: apiPath) else {
            throw KeygateError(.roleForbidden, "the token \(name) is \(role.rawValue): it may not \(method) \(apiPath)")
        }
    }
}

/// Dashboard sign-in: an admin token is exchanged for a session cookie (HttpOnly, Secure,
/// SameSite=Strict, 8 hours). Sessions are kept in the database, hashed, so every node behind a load
/// balancer accepts them and a restart or rolling upgrade does not sign operators out; each request
/// checks the token too, so revoking or expiring the token ends its sessions at once.
struct DashboardSessions: Sendable {
    let store: any ServerStore
    static let cookieName = "keygate_session"
    static let lifetime: TimeInterval = 8 * 3600

    /// Opens a session for `token`; answers the cookie to set. `unauthorized` for a token that is not
    /// usable.
    func signIn(token: String, now: Date = Date()) async throws -> Cookie {
        let token = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, token.count <= 256, let admin = try await store.adminToken(hash: AdminTokenSecret.hash(token))
        else { throw KeygateError(.unauthorized, "the admin token is not valid") }
        guard admin.isUsable(at: now) else {
            throw KeygateError(
                .tokenExpired, "the admin token \(admin.name) \(admin.revokedAt != nil ? "was revoked" : "expired")")
        }
        let value = Self.randomText()
        let expires = min(now + Self.lifetime, admin.expiresAt ?? .distantFuture)
        try await store.createDashboardSession(
            DashboardSession(
                idHash: AdminTokenSecret.hash(value), tokenHash: admin.hash, csrf: Self.randomText(), createdAt: now,
                expiresAt: expires))
        return Self.cookie(value: value, maxAge: Int(expires.timeIntervalSince(now)))
    }

    /// The viewer of a request carrying a session cookie, or `nil` when the cookie is missing, unknown,
    /// expired, or its token no longer usable.
    func viewer(_ request: Request, now: Date = Date()) async throws -> DashboardViewer? {
        guard let cookie = request.cookies[Self.cookieName]?.value, (20...100).contains(cookie.count) else {
            return nil
        }
        let idHash = AdminTokenSecret.hash(cookie)
        guard let session = try await store.dashboardSession(idHash: idHash, now: now),
            let admin = try await store.adminToken(hash: session.tokenHash), admin.isUsable(at: now)
        else { return nil }
        return DashboardViewer(name: admin.name, role: admin.role, csrf: session.csrf, sessionHash: idHash)
    }

    /// Ends the viewer's session.
    func signOut(_ viewer: DashboardViewer) async throws {
        try await store.deleteDashboardSession(idHash: viewer.sessionHash)
    }

    static func cookie(value: String, maxAge: Int) -> Cookie {
        Cookie(
            name: cookieName, value: value, maxAge: max(0, maxAge), path: "/ui", secure: true, httpOnly: true,
            sameSite: .strict)
    }

    /// 256 random bits, base64url (cookie-safe).
    static func randomText() -> String {
        Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }

    /// Compares two secrets in time independent of where they differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}
