import Foundation
import Hummingbird
import KeygateAttestation
import KeygatePKI

/// `/device/v1`: what devices call. No admin token; every call after `challenge` is attested. Every
/// route is rate-limited per client address (429 `rateLimited` with Retry-After).
struct DeviceRoutes {
    let enrollment: EnrollmentService
    let guardian: ClientGuard

    static let bodyLimit = 64 * 1024

    func register(on router: Router<KeygateRequestContext>) {
        let group = router.group("device/v1").add(middleware: RateLimitMiddleware(guardian: guardian))
        group.post("challenge") { request, context in
            let body = try await request.keygateJSON(DeviceAPI.ChallengeRequest.self)
            return try jsonResponse(
                try await enrollment.challenge(deviceID: body.deviceId, client: context.clientAddress),
                status: .created)
        }
        group.post("register") { request, context in
            let body = try await request.keygateJSON(DeviceAPI.RegisterRequest.self, limit: Self.bodyLimit)
            return try jsonResponse(
                try await enrollment.register(body, client: context.clientAddress), status: .created)
        }
        group.post("enroll") { request, context in
            let body = try await request.keygateJSON(DeviceAPI.EnrollRequest.self, limit: Self.bodyLimit)
            let result = try await enrollment.enroll(body, client: context.clientAddress)
            return try jsonResponse(result, status: result.status == "enrolled" ? .created : .accepted)
        }
        group.post("fork-proof") { request, context -> Response in
            let body = try await request.keygateJSON(DeviceAPI.ForkProofRequest.self, limit: Self.bodyLimit)
            try await enrollment.forkProof(body, client: context.clientAddress)
        }
        group.post("renew") { request, context in
            let body = try await request.keygateJSON(DeviceAPI.RenewRequest.self, limit: Self.bodyLimit)
            let result = try await enrollment.renew(
                body, clientCertificate: await context.clientCertificate(), client: context.clientAddress)
            return try jsonResponse(result, status: .created)
        }
        group.get("renewal") { _, context in
            try jsonResponse(
                try await enrollment.renewalInfo(
                    clientCertificate: await context.clientCertificate(), client: context.clientAddress))
        }
        group.post("status") { request, context in
            let body = try await request.keygateJSON(DeviceAPI.StatusRequest.self, limit: Self.bodyLimit)
            return try jsonResponse(try await enrollment.status(body, client: context.clientAddress))
        }
    }
}

/// Takes a token from the caller's bucket before the route runs (see ``ClientGuard``).
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = KeygateRequestContext
    let guardian: ClientGuard

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        try guardian.admitRequest(from: context.clientAddress)
        return try await next(request, context)
    }
}
