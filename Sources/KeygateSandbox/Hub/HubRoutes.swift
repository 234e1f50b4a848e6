import Foundation
import Hummingbird
import NIOCore

/// IoT Hub's registry REST (devices put/get/delete/list behind SAS) and device HTTPS telemetry
/// (client certificate).
struct HubRoutes {
    let store: SandboxStore
    let registry: HubRegistry

    static let apiVersions: Set<String> = ["2018-06-30", "2019-10-01", "2020-03-13", "2020-09-30", "2021-04-12"]

    func register(on router: Router<SandboxContext>) {
        router.put("devices/:id") { request, context in
            try await guarded(request, right: "RegistryWrite") {
                try await put(id: try context.parameters.require("id"), request: request)
            }
        }
        router.get("devices/:id") { request, context in
            try await guarded(request, right: "RegistryRead") {
                let id = try context.parameters.require("id")
                guard let device = await store.read({ $0.hub.devices[id] }) else { return Self.notFound(id) }
                return try SandboxHTTP.json(live(device).foundation)
            }
        }
        router.get("devices") { request, _ in
            try await guarded(request, right: "RegistryRead") {
                let top = request.uri.queryParameters.get("top").flatMap(Int.init).map { min(max($0, 1), 1000) } ?? 1000
                let devices = await store.state.hub.devices.sorted { $0.key < $1.key }.prefix(top).map {
                    live($0.value).foundation
                }
                return try SandboxHTTP.json(devices)
            }
        }
        router.delete("devices/:id") { request, context in
            try await guarded(request, right: "RegistryWrite") {
                let id = try context.parameters.require("id")
                let ifMatch = request.headers[.ifMatch]
                let answer = try await store.update { state -> Response? in
                    guard let existing = state.hub.devices[id] else { return Self.notFound(id) }
                    if let ifMatch, !DPSServiceRoutes.etagMatches(ifMatch, existing) {
                        return SandboxHTTP.hubError(status: 412, code: "PreconditionFailed", message: "ETag mismatch.")
                    }
                    state.hub.devices[id] = nil
                    return nil
                }
                if let answer { return answer }
                registry.disconnect(deviceID: id)
                return Response(status: .noContent)
            }
        }
        router.post("devices/:id/messages/events") { request, context in
            let id = try context.parameters.require("id")
            if let refusal = await registry.refusal(deviceID: id, leafDER: await context.clientCertificate()) {
                return SandboxHTTP.hubError(
                    status: 401, code: "IotHubUnauthorizedAccess", message: "Unauthorized: \(refusal).")
            }
            _ = try await request.body.collect(upTo: 256 * 1024)
            registry.countTelemetry(id)
            return Response(status: .noContent)
        }
    }

    private func put(id: String, request: Request) async throws -> Response {
        guard DPSServiceRoutes.isValidID(id) else {
            return SandboxHTTP.hubError(
                status: 400, code: "ArgumentInvalid", message: "'\(id)' is not a valid device ID.")
        }
        let body = try await request.body.collect(upTo: 256 * 1024)
        guard let json = JSONValue.parse(body.readableBytesView), json.object != nil else {
            return SandboxHTTP.hubError(status: 400, code: "ArgumentInvalid", message: "The body is not a device.")
        }
        if let given = json["deviceId"]?.string, given != id {
            return SandboxHTTP.hubError(
                status: 400, code: "ArgumentInvalid", message: "deviceId does not match the path.")
        }
        if let status = json["status"], status.string != "enabled" && status.string != "disabled" {
            return SandboxHTTP.hubError(
                status: 400, code: "ArgumentInvalid", message: "status must be 'enabled' or 'disabled'.")
        }
        let ifMatch = request.headers[.ifMatch]
        let (response, disabled) = try await store.update { state -> (Response, Bool) in
            let existing = state.hub.devices[id]
            if existing != nil && ifMatch == nil {
                return (
                    SandboxHTTP.hubError(status: 409, code: "DeviceAlreadyExists", message: "Device '\(id)' exists."),
                    false
                )
            }
            if let ifMatch, !DPSServiceRoutes.etagMatches(ifMatch, existing) {
                return (SandboxHTTP.hubError(status: 412, code: "PreconditionFailed", message: "ETag mismatch."), false)
            }
            let device = HubState.prepareDevice(json, id: id, existing: existing)
            state.hub.devices[id] = device
            return (try SandboxHTTP.json(live(device).foundation), device["status"]?.string == "disabled")
        }
        if disabled { registry.disconnect(deviceID: id) }
        return response
    }

    /// The stored identity with its live connection state.
    private func live(_ device: JSONValue) -> JSONValue {
        var device = device
        let id = device["deviceId"]?.string ?? ""
        device["connectionState"] = .string(registry.isConnected(id) ? "Connected" : "Disconnected")
        return device
    }

    private func guarded(_ request: Request, right: String, _ body: () async throws -> Response) async throws
        -> Response
    {
        guard let version = request.uri.queryParameters.get("api-version"), Self.apiVersions.contains(version) else {
            return SandboxHTTP.hubError(
                status: 400, code: "InvalidProtocolVersion", message: "Unsupported or missing api-version.")
        }
        switch SharedAccessSignature.verify(
            header: request.headers[.authorization], host: request.head.authority,
            policies: await store.read { $0.hub.policies }, right: right)
        {
        case .success: return try await body()
        case .failure(let failure):
            return SandboxHTTP.hubError(status: 401, code: "IotHubUnauthorizedAccess", message: failure.message)
        }
    }

    static func notFound(_ id: String) -> Response {
        SandboxHTTP.hubError(status: 404, code: "DeviceNotFound", message: "Device '\(id)' is not registered.")
    }
}
