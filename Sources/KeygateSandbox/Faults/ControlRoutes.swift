import Crypto
import Foundation
import Hummingbird

/// The sandbox's own control endpoint: read and change faults and quotas at run time, so a test
/// can turn Azure "down" and "up" again. Bearer token: `control.token` in connection.json.
///
/// - `GET /sandbox/control/faults`: settings per surface and how many calls were failed or passed.
/// - `PUT /sandbox/control/faults/{surface|all}`: a partial `FaultSettings` (only the fields given change).
struct ControlRoutes {
    let injector: FaultInjector
    let token: String
    let store: SandboxStore
    let hub: HubRegistry

    func register(on router: Router<SandboxContext>) {
        let control = router.group("sandbox/control")
        control.get("faults") { request, _ in
            try authorized(request) { try SandboxHTTP.encoded(injector.report) }
        }
        control.get("inspect") { request, _ in
            try await authorizedAsync(request) {
                try SandboxHTTP.encoded(await SandboxInventory.make(store: store, hub: hub))
            }
        }
        control.put("faults/:surface") { request, context in
            let name = try context.parameters.require("surface")
            let body = try await request.body.collect(upTo: 64 * 1024)
            return try authorized(request) {
                let surfaces: [SandboxSurface]
                if name == "all" {
                    surfaces = SandboxSurface.allCases
                } else if let surface = SandboxSurface(rawValue: name) {
                    surfaces = [surface]
                } else {
                    let known = SandboxSurface.allCases.map(\.rawValue).joined(separator: ", ")
                    return SandboxHTTP.error(
                        nil, status: 404, code: "unknownSurface", message: "No surface '\(name)'; use all, \(known).")
                }
                let change: FaultSettings.Change
                do {
                    change = try JSONDecoder().decode(FaultSettings.Change.self, from: Data(body.readableBytesView))
                } catch {
                    return SandboxHTTP.error(
                        nil, status: 400, code: "malformedJSON", message: "The body is not fault settings: \(error)")
                }
                do {
                    try injector.apply(change, to: surfaces)
                } catch let invalid as FaultSettingsInvalid {
                    return SandboxHTTP.error(nil, status: 400, code: "invalidFaultSettings", message: invalid.message)
                }
                return try SandboxHTTP.encoded(injector.report)
            }
        }
    }

    private func authorizedAsync(_ request: Request, _ body: () async throws -> Response) async throws -> Response {
        let denied = try authorized(request) { Response(status: .ok) }
        guard denied.status == .ok else { return denied }
        return try await body()
    }

    private func authorized(_ request: Request, _ body: () throws -> Response) throws -> Response {
        let given = request.headers[.authorization].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : "" } ?? ""
        // Compare digests so the time taken says nothing about the token.
        guard SHA256.hash(data: Array(given.utf8)) == SHA256.hash(data: Array(token.utf8)) else {
            return SandboxHTTP.error(
                nil, status: 401, code: "unauthorized", message: "The control endpoint needs its bearer token.")
        }
        return try body()
    }
}
