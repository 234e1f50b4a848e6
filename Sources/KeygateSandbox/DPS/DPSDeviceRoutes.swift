import Foundation
import Hummingbird
import NIOCore

/// The DPS device API over HTTPS: `PUT /{idScope}/registrations/{id}/register` with the device's TLS
/// client certificate answers 202 with an operation; `GET .../operations/{operationId}` answers the outcome.
struct DPSDeviceRoutes {
    let store: SandboxStore
    let registrar: DPSRegistrar

    func register(on router: Router<SandboxContext>) {
        router.put(":idScope/registrations/:registrationId/register") { request, context in
            let (scope, id) = (
                try context.parameters.require("idScope"), try context.parameters.require("registrationId")
            )
            if let problem = await check(request, scope: scope) { return problem }
            _ = try await request.body.collect(upTo: 64 * 1024)
            switch await registrar.match(registrationID: id, leafDER: await context.clientCertificate()) {
            case .failure(let refusal):
                return SandboxHTTP.dpsError(status: 401, subcode: 2, message: "Unauthorized: \(refusal.reason).")
            case .success(let match):
                let operationID = try await registrar.register(match, registrationID: id)
                return try SandboxHTTP.json(
                    ["operationId": operationID, "status": "assigning"], status: .accepted, headers: [.retryAfter: "1"])
            }
        }
        router.get(":idScope/registrations/:registrationId/operations/:operationId") { request, context in
            let scope = try context.parameters.require("idScope")
            let id = try context.parameters.require("registrationId")
            if let problem = await check(request, scope: scope) { return problem }
            if case .failure(let refusal) = await registrar.match(
                registrationID: id, leafDER: await context.clientCertificate())
            {
                return SandboxHTTP.dpsError(status: 401, subcode: 2, message: "Unauthorized: \(refusal.reason).")
            }
            guard let result = registrar.operation(try context.parameters.require("operationId"), registrationID: id)
            else { return SandboxHTTP.dpsError(status: 404, subcode: 3, message: "No such operation.") }
            return try SandboxHTTP.json(result.foundation)
        }
    }

    private func check(_ request: Request, scope: String) async -> Response? {
        guard request.uri.queryParameters.get("api-version") != nil else {
            return SandboxHTTP.dpsError(
                status: 400, subcode: 4, message: "The api-version query parameter is required.")
        }
        guard scope == (await store.read({ $0.dps.idScope })) else {
            return SandboxHTTP.dpsError(status: 404, subcode: 1, message: "Unknown ID scope '\(scope)'.")
        }
        return nil
    }
}
