import Foundation
import Hummingbird
import KeygateAttestation
import KeygatePKI
import NIOCore
import HTTPTypes
import KeygateDomain

/// EST (RFC 7030, as updated by RFC 8951) under `/.well-known/est/` and `/.well-known/est/GROUP/` on
/// the HTTPS listener: `cacerts`, `simpleenroll`, `simplereenroll` and `csrattrs`. `serverkeygen` and
/// `fullcmc` answer 501: device keys never leave the device.
///
/// Errors answer the RFC's status codes with a `text/plain` body `code: message`; a missing or
/// wrong credential answers 401 with `WWW-Authenticate: Basic`; a group with manual approval
/// answers 202 with `Retry-After` until an operator approves. Every route is rate-limited per
/// client address like the device API.
struct ESTRoutes {
    let enrollment: EnrollmentService
    let guardian: ClientGuard

    static let bodyLimit = 64 * 1024
    static let realm = "Basic realm=\"keygate-est\", charset=\"UTF-8\""

    func register(on router: Router<KeygateRequestContext>) {
        let est = router.group(".well-known/est").add(middleware: RateLimitMiddleware(guardian: guardian))
        for prefix in ["", ":label/"] {
            est.get("\(prefix)cacerts") { _, _ in
                try await Self.answer { Self.certsOnly(try enrollment.estCACertificates(), status: .ok) }
            }
            est.get("\(prefix)csrattrs") { _, context in
                try await Self.answer {
                    guard let attributes = try await enrollment.estCSRAttributes(label: context.parameters.get("label"))
                    else { return Response(status: .noContent) }
                    return Response(
                        status: .ok, headers: [.contentType: "application/csrattrs", Self.transferEncoding: "base64"],
                        body: .init(byteBuffer: ByteBuffer(string: ESTMessages.base64Body(attributes))))
                }
            }
            for (operation, reenroll) in [("simpleenroll", false), ("simplereenroll", true)] {
                est.post("\(prefix)\(operation)") { request, context in
                    try await Self.answer {
                        let csr = try await Self.csr(request)
                        let outcome = try await enrollment.estEnroll(
                            csr: csr, credential: try await Self.credential(request, context),
                            label: context.parameters.get("label"), reenroll: reenroll,
                            client: context.clientAddress)
                        switch outcome {
                        case .issued(let der): return Self.certsOnly(try ESTMessages.certsOnly([der]), status: .ok)
                        case .pending(let seconds):
                            return Response(
                                status: .accepted,
                                headers: [.retryAfter: String(seconds), .contentType: "text/plain; charset=utf-8"],
                                body: .init(
                                    byteBuffer: ByteBuffer(
                                        string: "pendingApproval: an operator must approve this device; ask again later\n")))
                        }
                    }
                }
            }
            for operation in ["serverkeygen", "fullcmc"] {
                est.post("\(prefix)\(operation)") { _, _ in
                    Self.errorResponse(
                        KeygateError(
                            .estOperationNotSupported,
                            "\(operation) is not offered: device keys are made on the device and never leave it; send a CSR to simpleenroll"
                        ))
                }
            }
        }
    }

    static let transferEncoding = HTTPField.Name("Content-Transfer-Encoding")!

    /// A certs-only CMS answer, base64 (RFC 8951).
    static func certsOnly(_ der: [UInt8], status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/pkcs7-mime; smime-type=certs-only", transferEncoding: "base64"],
            body: .init(byteBuffer: ByteBuffer(string: ESTMessages.base64Body(der))))
    }

    /// The CSR of an enrollment request: `application/pkcs10`, base64 of DER.
    static func csr(_ request: Request) async throws -> [UInt8] {
        let type = (request.headers[.contentType] ?? "").split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        guard type == "application/pkcs10" else {
            throw KeygateError(.unsupportedMediaType, "an EST enrollment takes Content-Type: application/pkcs10")
        }
        let body = try await request.keygateBody(limit: bodyLimit)
        guard let der = ESTMessages.decodeBase64Body(body) else {
            throw KeygateError(.estMalformedRequest, "the body must be base64 of a DER PKCS #10 request (RFC 8951)")
        }
        return der
    }

    /// The client certificate, else HTTP Basic (device ID and one-time enrollment token), else `nil`.
    static func credential(_ request: Request, _ context: KeygateRequestContext) async throws -> ESTCredential? {
        if let certificate = await context.clientCertificate() { return .certificate(certificate) }
        guard let header = request.headers[.authorization] else { return nil }
        guard header.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else {
            throw KeygateError(.estAuthenticationRequired, "the Authorization header must be HTTP Basic")
        }
        return .password(deviceID: String(text[..<colon]), token: String(text[text.index(after: colon)...]))
    }

    /// Runs `body`; a Keygate error becomes its status with a text body (and the headers it calls for).
    static func answer(_ body: () async throws -> Response) async rethrows -> Response {
        do {
            return try await body()
        } catch let error as KeygateError {
            return errorResponse(error)
        }
    }

    static func errorResponse(_ error: KeygateError) -> Response {
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        if let retryAfter = error.retryAfter ?? (error.code.kind == .unavailable ? 5 : nil) {
            headers[.retryAfter] = String(retryAfter)
        }
        var status = error.code.httpStatus
        // RFC 7030 §3.2.3: an unauthenticated or wrongly authenticated client is asked for credentials.
        if error.code == .estAuthenticationRequired || error.code == .enrollmentTokenInvalid
            || error.code == .clientCertificateInvalid || error.code == .clientCertificateRequired
        {
            status = .unauthorized
            headers[.wwwAuthenticate] = realm
        }
        return Response(
            status: status, headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: "\(error.code.rawValue): \(error.message)\n")))
    }
}
