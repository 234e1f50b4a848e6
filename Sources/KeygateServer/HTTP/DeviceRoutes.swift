import Foundation
import Hummingbird
import KeygateAttestation
import KeygatePKI

/// `/device/v1`: what devices call. No admin token; every call after `challenge` is attested.
struct DeviceRoutes {
    let enrollment: EnrollmentService

    static let bodyLimit = 64 * 1024

    func register(on router: Router<KeygateRequestContext>) {
        let group = router.group("device/v1")
        group.post("challenge") { request, _ in
            let body = try await request.keygateJSON(DeviceAPI.ChallengeRequest.self)
            return try jsonResponse(try await enrollment.challenge(deviceID: body.deviceId), status: .created)
        }
        group.post("register") { request, _ in
            let body = try await request.keygateJSON(DeviceAPI.RegisterRequest.self, limit: Self.bodyLimit)
            return try jsonResponse(try await enrollment.register(body), status: .created)
        }
        group.post("enroll") { request, _ in
            let body = try await request.keygateJSON(DeviceAPI.EnrollRequest.self, limit: Self.bodyLimit)
            let result = try await enrollment.enroll(body)
            return try jsonResponse(result, status: result.status == "enrolled" ? .created : .accepted)
        }
        group.post("fork-proof") { request, _ -> Response in
            let body = try await request.keygateJSON(DeviceAPI.ForkProofRequest.self, limit: Self.bodyLimit)
            try await enrollment.forkProof(body)
        }
        group.post("renew") { request, context in
            let body = try await request.keygateJSON(DeviceAPI.RenewRequest.self, limit: Self.bodyLimit)
            let result = try await enrollment.renew(body, clientCertificate: await context.clientCertificate())
            return try jsonResponse(result, status: .created)
        }
        group.get("renewal") { _, context in
            try jsonResponse(try await enrollment.renewalInfo(clientCertificate: await context.clientCertificate()))
        }
        group.post("status") { request, _ in
            let body = try await request.keygateJSON(DeviceAPI.StatusRequest.self, limit: Self.bodyLimit)
            return try jsonResponse(try await enrollment.status(body))
        }
    }
}
