import Foundation
import Hummingbird
import KeygateDomain
import KeygateStore
import NIOCore

/// `/healthz`, `/metrics` and `/openapi.yaml`, on both listeners (`/metrics` on its own listener instead when
/// `metricsListen` is set).
struct OperationalRoutes {
    let service: CertificateService
    /// When set, `/metrics` needs an admin token (any role).
    var metricsAuth: AdminAuthMiddleware? = nil
    /// Whether this listener serves `/metrics` (not when a metrics listener of its own is configured).
    var serveMetrics = true
    /// Whether this listener serves `/openapi.yaml`.
    var openAPI = true

    func register(on router: Router<KeygateRequestContext>) {
        router.get("healthz") { _, _ in
            _ = try await service.store.certificateCounts()
            return try jsonResponse(["status": "ok"])
        }
        // Load balancers probe with HEAD: the same check, no body.
        router.head("healthz") { _, _ in
            _ = try await service.store.certificateCounts()
            return Response(status: .ok, headers: [.contentType: "application/json"])
        }
        let metrics: @Sendable (Request, KeygateRequestContext) async throws -> Response = { _, _ in
            _ = try? await service.crl.current()  // refreshes the CRL age gauge
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: service.metrics.render())))
        }
        if !serveMetrics {
        } else if let metricsAuth {
            router.group("metrics").add(middleware: metricsAuth).get(use: metrics)
        } else {
            router.get("metrics", use: metrics)
        }
        guard openAPI else { return }
        router.get("openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml"],
                body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
    }
}

/// The OpenAPI description of Keygate's HTTP API, shipped inside the binary.
enum OpenAPIDocument {
    /// The bundled `openapi.yaml`, or a minimal placeholder document when the resource is missing.
    public static var yaml: String {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return "openapi: 3.1.0\ninfo: {title: Keygate, version: unknown}\npaths: {}\n" }
        return text
    }
}
