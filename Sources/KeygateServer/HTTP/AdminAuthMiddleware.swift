import Foundation
import Hummingbird
import KeygateDomain
import KeygatePKI
import KeygateStore

/// Requires `Authorization: Bearer <admin token>` and records who the caller is.
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
        var context = context
        context.adminName = admin.name
        return try await next(request, context)
    }
}
