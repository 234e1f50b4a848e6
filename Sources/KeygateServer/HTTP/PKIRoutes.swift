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
            guard encoded.utf8.count <= Self.ocspBodyLimit * 3, let der = Self.decodeGETRequest(encoded) else {
                return ocspResponse(OCSPResponder.unsignedResponse(.malformedRequest))
            }
            return ocspResponse(await service.answerOCSP(der))
        }
    }

    /// The DER of a GET request's path segment: percent-decoded (only when it holds a `%`), then
    /// base64. This is the hot path of a responder that mostly serves answers signed ahead.
    static func decodeGETRequest(_ encoded: String) -> [UInt8]? {
        var text = encoded
        if encoded.utf8.contains(UInt8(ascii: "%")) {
            var bytes: [UInt8] = []
            var iterator = encoded.utf8.makeIterator()
            while let byte = iterator.next() {
                guard byte == UInt8(ascii: "%") else {
                    bytes.append(byte)
                    continue
                }
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            }
            text = String(decoding: bytes, as: UTF8.self)
        }
        return Data(base64Encoded: text).map { Array($0) }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private func ocspResponse(_ bytes: [UInt8]) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/ocsp-response"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
