import Crypto
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
        let chainTag = "\"" + Hex.encode(Array(SHA256.hash(data: Array(chainPEM.utf8)).prefix(12))) + "\""
        for method in [HTTPRequest.Method.get, .head] {
            router.on("pki/ca.pem", method: method) { request, _ in
                Self.cacheable(
                    request, bytes: Array(chainPEM.utf8), type: "application/pem-certificate-chain", etag: chainTag,
                    lastModified: nil, maxAge: 3600)
            }
            router.on("pki/crl", method: method) { request, _ in
                let crl = try await service.crl.current()
                return Self.cacheable(
                    request, bytes: crl.der, type: "application/pkix-crl", etag: "\"crl-\(crl.number)\"",
                    lastModified: crl.thisUpdate, maxAge: max(0, Int(crl.nextUpdate.timeIntervalSinceNow / 2)))
            }
        }
        router.post("pki/ocsp") { request, context in
            if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/ocsp-request") {
                throw KeygateError(.unsupportedMediaType, "OCSP requests must be sent as application/ocsp-request")
            }
            let body = try await request.keygateBody(limit: Self.ocspBodyLimit)
            return ocspResponse(await service.answerOCSP(body, client: context.clientAddress))
        }
        // GET {url}/{url-encoding of base-64 encoding of the DER encoding of the OCSPRequest} (RFC 6960 §A.1)
        router.get("pki/ocsp/**") { request, context in
            let encoded = context.parameters.getCatchAll().joined(separator: "/")
            guard encoded.utf8.count <= Self.ocspBodyLimit * 3, let der = Self.decodeGETRequest(encoded) else {
                return ocspResponse(OCSPResponder.unsignedResponse(.malformedRequest))
            }
            return ocspResponse(await service.answerOCSP(der, client: context.clientAddress))
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

    /// A GET or HEAD answer with `ETag`, `Last-Modified` and `Cache-Control`; 304 when the client's
    /// `If-None-Match` (or, without it, `If-Modified-Since`) says it has this version.
    static func cacheable(
        _ request: Request, bytes: [UInt8], type: String, etag: String, lastModified: Date?, maxAge: Int
    ) -> Response {
        var headers: HTTPFields = [.contentType: type, .eTag: etag, .cacheControl: "public, max-age=\(maxAge)"]
        if let lastModified { headers[.lastModified] = httpDate(lastModified) }
        let notModified: Bool
        if let tags = request.headers[.ifNoneMatch] {
            notModified = tags.split(separator: ",").contains {
                let tag = $0.trimmingCharacters(in: .whitespaces)
                return tag == etag || tag == "*" || tag == "W/" + etag
            }
        } else if let since = request.headers[.ifModifiedSince].flatMap(parseHTTPDate), let lastModified {
            notModified = lastModified.timeIntervalSince1970.rounded(.down) <= since.timeIntervalSince1970
        } else {
            notModified = false
        }
        if notModified { return Response(status: .notModified, headers: headers) }
        headers[.contentLength] = String(bytes.count)
        guard request.method != .head else { return Response(status: .ok, headers: headers) }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// An IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func httpDate(_ date: Date) -> String { httpDateFormatter().string(from: date) }

    static func parseHTTPDate(_ text: String) -> Date? { httpDateFormatter().date(from: text) }

    private static func httpDateFormatter() -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter
    }

    private func ocspResponse(_ bytes: [UInt8]) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/ocsp-response"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
