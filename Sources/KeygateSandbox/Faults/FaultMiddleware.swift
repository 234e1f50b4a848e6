import Hummingbird

/// Applies the injected faults and quotas of the surface a request belongs to, before its route, and
/// counts the calls the routes refused as invalid.
struct FaultMiddleware: RouterMiddleware {
    typealias Context = SandboxContext
    let injector: FaultInjector
    let idScope: String

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let surface = SandboxSurface.of(path: request.uri.path, idScope: idScope) else {
            return try await next(request, context)
        }
        if let decision = injector.decide(surface) { return try await Self.response(for: decision, surface: surface) }
        var response = try await next(request, context)
        let status = response.status.code
        if (400..<500).contains(status), ![404, 409, 412, 429].contains(status) {
            injector.recordRefusal(surface, "\(request.method.rawValue) \(request.uri.path) → \(status)")
        }
        // A bulk operation answers 200 and lists the items it refused; each counts as a refusal.
        if let items = response.headers[SandboxSurface.refusedItemsHeader].flatMap(Int.init) {
            response.headers[SandboxSurface.refusedItemsHeader] = nil
            for _ in 0..<items {
                injector.recordRefusal(surface, "\(request.method.rawValue) \(request.uri.path) → an item refused (400)")
            }
        }
        return response
    }

    /// The answer a fault gives over HTTP (MQTT surfaces turn decisions into their own failures).
    static func response(for decision: FaultDecision, surface: SandboxSurface) async throws -> Response {
        switch decision {
        case .respond(let status, let retryAfter, let reason):
            let code: String
            switch status {
            case 429: code = surface == .hub || surface == .hubDevice ? "ThrottlingException" : "TooManyRequests"
            case 503: code = surface == .aad ? "temporarily_unavailable" : "ServiceUnavailable"
            default: code = surface == .aad ? "server_error" : "InternalServerError"
            }
            return SandboxHTTP.error(
                surface, status: status, code: code, message: "Sandbox: \(reason) (\(status)).", retryAfter: retryAfter)
        case .delay(let seconds):
            try await Task.sleep(for: .seconds(seconds))
            return SandboxHTTP.error(
                surface, status: 503, code: "ServiceUnavailable", message: "Sandbox: injected timeout.", retryAfter: 1)
        case .drop:
            // The head may be buffered, but the body never completes: the connection closes mid-answer.
            return Response(status: .ok, headers: [:], body: ResponseBody { _ in throw ConnectionDropped() })
        }
    }
}

struct ConnectionDropped: Error {}
