import Foundation
import Hummingbird
import KeygateDomain
import KeygatePKI
import KeygateStore

/// Requires `Authorization: Bearer <admin token>` of a usable token (not expired, not revoked) whose
/// role allows the call, and records who the caller is.
///
/// Tokens are compared by their SHA-256 hash, which is all the store keeps.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = KeygateRequestContext
    let store: any AdminTokenStore

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw KeygateError(.unauthorized, "an admin token is required (Authorization: Bearer <token>)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw KeygateError(.unauthorized, "the Authorization header must be 'Bearer <token>'")
        }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        guard token.count <= 256, let admin = try await store.adminToken(hash: AdminTokenSecret.hash(token)) else {
            throw KeygateError(.unauthorized, "the admin token is not valid")
        }
        guard admin.isUsable() else {
            throw KeygateError(
                .tokenExpired, "the admin token \(admin.name) \(admin.revokedAt != nil ? "was revoked" : "expired")")
        }
        guard admin.role.allows(method: request.method.rawValue, path: request.uri.path) else {
            throw KeygateError(
                .roleForbidden, "the token \(admin.name) is \(admin.role.rawValue): it may not \(request.method.rawValue) \(request.uri.path)")
        }
        var context = context
        context.adminName = admin.name
        return try await next(request, context)
    }
}
