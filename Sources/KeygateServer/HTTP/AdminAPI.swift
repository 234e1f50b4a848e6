public import Foundation
import Hummingbird
import KeygateDomain
import KeygatePKI
import KeygateStore
import X509

/// `/admin/v1`: certificate authority administration. Every route needs an admin token.
struct AdminAPI {
    let service: CertificateService
    let audit: AuditService
    let tokens: TokenService
    let auth: AdminAuthMiddleware
    let configuration: ServerConfiguration
    let rootCertificate: Certificate

    static let csrBodyLimit = 64 * 1024

    func register(on router: Router<KeygateRequestContext>) {
        let group = router.group("admin/v1").add(middleware: auth)
        group.get("ca") { _, _ in try await caInfo() }
        group.post("certificates") { request, context in try await issue(request, context) }
        group.get("certificates") { request, _ in try await list(request) }
        group.get("certificates/:serial") { _, context in
            try jsonResponse(
                CertificateBody(try await service.certificate(serial: try context.parameters.require("serial"))))
        }
        group.post("certificates/:serial/revoke") { request, context in
            let body = try await request.keygateJSON(RevokeBody.self)
            let record = try await service.revoke(
                serial: try context.parameters.require("serial"), reason: try RevocationReason(name: body.reason),
                actor: context.actor)
            return try jsonResponse(CertificateBody(record))
        }
        group.get("audit") { request, _ in
            let query = request.uri.queryParameters
            let since = try query.get("since").map(parseDate)
            let limit = try query.get("limit").map(parseLimit) ?? 100
            if let after = query.get("after") {
                // Export pages: oldest first after a sequence number, with the chain links.
                guard let after = Int64(after), after >= 0 else {
                    throw KeygateError(.malformedInput, "after must be a sequence number (0 or more)")
                }
                let events = try await audit.events(after: after, limit: limit)
                return try jsonResponse(["events": events.map(AuditEventBody.init)])
            }
            let events = try await audit.events(subject: query.get("subject"), since: since, limit: limit)
            return try jsonResponse(["events": events.map(AuditEventBody.init)])
        }
        group.post("tokens") { request, context in
            struct Body: Decodable {
                var name: String
                var role: String?
                var expiresInSeconds: Int?
            }
            let body = try await request.keygateJSON(Body.self)
            guard let role = AdminToken.Role(rawValue: body.role ?? "admin") else {
                throw KeygateError(.malformedInput, "role is admin, operator or read-only")
            }
            let (token, text) = try await tokens.create(
                name: body.name, role: role, lifetime: body.expiresInSeconds.map(TimeInterval.init),
                actor: context.actor)
            var answer = TokenBody(token)
            answer.token = text
            return try jsonResponse(answer, status: .created)
        }
        group.get("tokens") { _, _ in try jsonResponse(["tokens": try await tokens.list().map(TokenBody.init)]) }
        group.delete("tokens/:name") { _, context in
            try await tokens.revoke(name: try context.parameters.require("name"), actor: context.actor)
            return Response(status: .noContent)
        }
        group.get("audit/verify") { _, _ in try jsonResponse(AuditVerifyBody(try await audit.verify())) }
        group.post("audit/checkpoint") { _, _ in
            let written = try await audit.checkpoint()
            return try jsonResponse(["written": written != nil])
        }
    }

    // MARK: Handlers

    private func issue(_ request: Request, _ context: KeygateRequestContext) async throws -> Response {
        let body = try await request.keygateJSON(IssueBody.self, limit: Self.csrBodyLimit)
        let profile = try CertificateProfile.named(body.profile ?? CertificateProfile.device.name)
        guard let subject = body.subject else {
            throw KeygateError(
                .invalidSubject, "the request needs subject.commonName: Keygate assigns names, the CSR does not")
        }
        var validity: TimeInterval?
        if let days = body.validityDays {
            guard (1...3650).contains(days) else {
                throw KeygateError(.malformedInput, "validityDays must be 1 to 3650")
            }
            validity = TimeInterval(days) * 86_400
        }
        let issued = try await service.issue(
            csr: Array(body.csr.utf8), profile: profile,
            identity: CertificateIdentity(
                commonName: subject.commonName, dnsNames: subject.dnsNames ?? [], ipAddresses: subject.ipAddresses ?? []
            ),
            validity: validity, deviceID: body.deviceId, actor: context.actor)
        var result = CertificateBody(issued.record)
        result.chain = issued.chainPEM
        return try jsonResponse(result, status: .created)
    }

    private func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = CertificateQuery(limit: try query.get("limit").map(parseLimit) ?? 100)
        if let status = query.get("status") {
            guard let parsed = CertificateRecord.Status(rawValue: status) else {
                throw KeygateError(.malformedInput, "status must be one of: active, revoked, onHold")
            }
            filter.status = parsed
        }
        filter.profile = query.get("profile")
        filter.deviceID = query.get("deviceId")
        filter.after = query.get("after")
        if let within = query.get("expiringWithin") {
            // Close to expiry and not replaced by a renewal: what the expiry scanner counts.
            let now = Date()
            filter.expiringBefore = now + (try parseDuration(within))
            filter.unexpiredAt = now
            filter.unrenewedOnly = true
        }
        let records = try await service.certificates(matching: filter)
        return try jsonResponse(
            CertificateListBody(
                certificates: records.map(CertificateBody.init),
                next: records.count == filter.limit ? records.last?.serial : nil))
    }

    private func caInfo() async throws -> Response {
        let counts = try await service.certificateCounts()
        let crl = try await service.crl.current()
        return try jsonResponse(
            CAInfoBody(
                root: try CAEntryBody(rootCertificate, location: configuration.root),
                issuing: try CAEntryBody(service.authority.certificate, location: configuration.issuing),
                certificates: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }),
                crl: .init(
                    number: crl.number, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, entries: crl.entryCount),
                crlURL: service.revocation.crlURL, ocspURL: service.revocation.ocspURL))
    }
}

// MARK: Parsing helpers

func parseLimit(_ text: String) throws -> Int {
    guard let value = Int(text), (1...1000).contains(value) else {
        throw KeygateError(.malformedInput, "limit must be a number from 1 to 1000")
    }
    return value
}

func parseDate(_ text: String) throws -> Date {
    if let date = ISO8601DateFormatter().date(from: text) { return date }
    if let duration = try? parseDuration(text) { return Date() - duration }
    throw KeygateError(.malformedInput, "'\(text)' is neither an ISO 8601 time nor a duration like 24h")
}

/// `30s`, `15m`, `24h`, `7d`.
public func parseDuration(_ text: String) throws -> TimeInterval {
    let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
    guard let unit = text.last, let scale = units[unit], let value = Double(text.dropLast()), value.isFinite,
        value >= 0, value * scale <= 100 * 365 * 86_400
    else {
        throw KeygateError(
            .malformedInput, "'\(text)' is not a duration of at most 100 years; use e.g. 30s, 15m, 24h or 7d")
    }
    return value * scale
}
