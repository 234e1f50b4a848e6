import Foundation
import Hummingbird
import KeygateDomain
import KeygatePKI
import KeygateStore

/// `/admin/v1/groups`, `/admin/v1/allowlist`, `/admin/v1/devices`: thin routes over the fleet and
/// lifecycle services.
struct AdminOnboardingAPI {
    let fleet: FleetService
    let lifecycle: LifecycleService
    let auth: AdminAuthMiddleware

    func register(on router: Router<KeygateRequestContext>) {
        let group = router.group("admin/v1").add(middleware: auth)
        group.post("groups") { request, context in
            let body = try await request.keygateJSON(GroupRequest.self, limit: 1 << 20)
            let (created, key) = try await fleet.createGroup(body, actor: context.actor)
            var result = GroupBody(created)
            result.symmetricKey = key
            return try jsonResponse(result, status: .created)
        }
        group.get("groups") { _, _ in try jsonResponse(["groups": try await fleet.groups().map(GroupBody.init)]) }
        group.get("groups/:name") { _, context in
            try jsonResponse(GroupBody(try await fleet.group(named: try context.parameters.require("name"))))
        }
        group.patch("groups/:name") { request, context in
            let name = try context.parameters.require("name")
            _ = try await fleet.group(named: name)
            let body = try await request.keygateJSON(GroupRequest.self, limit: 1 << 20)
            let (updated, key) = try await fleet.updateGroup(named: name, body, actor: context.actor)
            var result = GroupBody(updated)
            result.symmetricKey = key
            return try jsonResponse(result)
        }

        group.post("allowlist") { request, context in
            let body = try await request.keygateJSON(AllowlistImportRequest.self, limit: 16 << 20)
            let result = try await fleet.importAllowlist(body, actor: context.actor)
            return try jsonResponse(result, status: body.strict == true && !result.errors.isEmpty ? .badRequest : .ok)
        }
        group.get("allowlist") { request, _ in
            let query = request.uri.queryParameters
            let limit = try query.get("limit").map(parseLimit) ?? 100
            let page = try await fleet.allowlist(group: query.get("group"), after: query.get("after"), limit: limit)
            return try jsonResponse(
                AllowlistListBody(
                    entries: page.entries.map { AllowlistBody($0.0, state: $0.1.rawValue) }, next: page.next))
        }
        group.delete("allowlist/:id") { _, context in
            try await fleet.removeFromAllowlist(deviceID: try context.parameters.require("id"), actor: context.actor)
            return Response(status: .noContent)
        }

        group.get("devices") { request, _ in
            let query = request.uri.queryParameters
            var state: Device.State?
            if let text = query.get("state") {
                guard let parsed = Device.State(rawValue: text) else {
                    let names = Device.State.allCases.map(\.rawValue).joined(separator: ", ")
                    throw KeygateError(.malformedInput, "state must be one of: \(names)")
                }
                state = parsed
            }
            let limit = try query.get("limit").map(parseLimit) ?? 100
            let devices = try await fleet.devices(
                state: state, group: query.get("group"), after: query.get("after"), limit: limit)
            return try jsonResponse(
                DeviceListBody(
                    devices: devices.map(DeviceBody.init), next: devices.count == limit ? devices.last?.id : nil))
        }
        group.get("devices/:id") { _, context in
            let id = try context.parameters.require("id")
            var body = DeviceBody(try await fleet.device(id: id))
            body.certificates = try await fleet.certificates(ofDevice: id).map(CertificateBody.init)
            body.events = try await fleet.auditEvents(subject: id).map(AuditEventBody.init)
            return try jsonResponse(body)
        }
        group.post("devices/:id/quarantine") { request, context in
            struct Body: Decodable { var reason: String? }
            let body = try await request.keygateJSON(Body.self)
            let reason = body.reason ?? "manual"
            guard (1...200).contains(reason.count) else {
                throw KeygateError(.malformedInput, "reason must be 1 to 200 characters")
            }
            let device = try await lifecycle.quarantine(
                deviceID: try context.parameters.require("id"), reason: reason, actor: context.actor)
            return try jsonResponse(DeviceBody(device))
        }
        group.post("devices/:id/reauthorize") { request, context in
            struct Body: Decodable { var allowReregistration: Bool? }
            let body = try await request.keygateOptionalJSON(Body.self)
            let device = try await lifecycle.reauthorize(
                deviceID: try context.parameters.require("id"), actor: context.actor,
                allowReregistration: body?.allowReregistration ?? false)
            return try jsonResponse(DeviceBody(device))
        }
        group.post("devices/:id/retire") { request, context in
            struct Body: Decodable { var reason: String? }
            let body = try await request.keygateOptionalJSON(Body.self)
            if let reason = body?.reason, !(1...200).contains(reason.count) {
                throw KeygateError(.malformedInput, "reason must be 1 to 200 characters")
            }
            let device = try await lifecycle.retire(
                deviceID: try context.parameters.require("id"), reason: body?.reason, actor: context.actor)
            return try jsonResponse(DeviceBody(device))
        }
        group.post("devices/:id/approve") { _, context in
            let device = try await lifecycle.approve(
                deviceID: try context.parameters.require("id"), actor: context.actor)
            return try jsonResponse(DeviceBody(device))
        }
        group.post("groups/:name/rotation") { request, context in
            struct Body: Decodable {
                var perMinute: Int?
                var reason: String?
            }
            let body = try await request.keygateOptionalJSON(Body.self)
            let (rotation, progress) = try await lifecycle.startRotation(
                group: try context.parameters.require("name"), perMinute: body?.perMinute ?? 60,
                reason: body?.reason ?? "rotation", actor: context.actor)
            return try jsonResponse(RotationBody(rotation, progress), status: .created)
        }
        group.get("groups/:name/rotation") { _, context in
            let (rotation, progress) = try await lifecycle.rotation(group: try context.parameters.require("name"))
            return try jsonResponse(RotationBody(rotation, progress))
        }
    }
}
