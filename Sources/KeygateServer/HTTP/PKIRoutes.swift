import Foundation
import Hummingbird
import KeygateDomain
import KeygatePKI
import KeygateStore
import NIOCore

/// `/pki`: what relying parties fetch over plain HTTP: the CA chain, the CRL and OCSP.
struct PKIRoutes {
    let service: CertificateService
    let chainPEM: String

    static let ocspBodyLimit = 8 * 1024

    func register(on router: Router<KeygateRequestContext>) {
        router.get("pki/ca.pem") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/pem-certificate-chain"],
                body: .init(byteBuffer: ByteBuffer(string: chainPEM)))
        }
        router.get("pki/crl") { _, _ in
            let crl = try await service.crl.current()
            var headers: HTTPFields = [.contentType: "application/pkix-crl"]
            headers[.cacheControl] = "public, max-age=\(max(0, Int(crl.nextUpdate.timeIntervalSinceNow / 2)))"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: crl.der)))
        }
        router.post("pki/ocsp") { request, _ in
            if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/ocsp-request") {
                throw KeygateError(.unsupportedMediaType, "OCSP requests must be sent as application/ocsp-request")
            }
            let body = try await request.keygateBody(limit: Self.ocspBodyLimit)
            return ocspResponse(await service.answerOCSP(body))
        }
        // GET {url}/{url-encoding of base-64 encoding of the DER encoding of the OCSPRequest} (RFC 6960 §A.1)
        router.get("pki/ocsp/**") { request, context in
            let encoded = context.parameters.getCatchAll().joined(separator: "/")
            let base64 = encoded.removingPercentEncoding ?? String(encoded)
            guard base64.count <= Self.ocspBodyLimit * 2, let der = Data(base64Encoded: base64) else {
                return ocspResponse(OCSPResponder.unsignedResponse(.malformedRequest))
            }
            return ocspResponse(await service.answerOCSP(Array(der)))
        }
    }

    private func ocspResponse(_ bytes: [UInt8]) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/ocsp-response"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
