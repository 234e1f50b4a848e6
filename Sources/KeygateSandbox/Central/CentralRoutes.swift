import Crypto
import Foundation
import Hummingbird
import NIOCore
import X509

/// IoT Central's REST API (`/api/...?api-version=2022-07-31`), a facade over the same DPS and hub:
/// a device's X.509 attestation becomes its DPS individual enrollment, `enabled: false` disables the
/// enrollment and the hub identity (and cuts the connection), enrollment groups take a CA after
/// proof of possession. Authorised by the app's API token or an AAD bearer token.
struct CentralRoutes {
    let store: SandboxStore
    let hub: HubRegistry
    let tokens: AADTokens

    static let apiVersions: Set<String> = ["2022-05-31", "2022-07-31", "2022-10-31-preview", "2023-07-31"]
    static let scope = "https://apps.azureiotcentral.com/.default"

    func register(on router: Router<SandboxContext>) {
        let api = router.group("api")
        api.put("devices/:id") { request, context in
            try await guarded(request) { try await putDevice(try context.parameters.require("id"), request: request) }
        }
        api.patch("devices/:id") { request, context in
            try await guarded(request) { try await patchDevice(try context.parameters.require("id"), request: request) }
        }
        api.get("devices/:id") { request, context in
            try await guarded(request) {
                let id = try context.parameters.require("id")
                guard let device = await store.read({ $0.central.devices[id] }) else { return Self.notFound("device", id) }
                return try SandboxHTTP.json(await view(device).foundation)
            }
        }
        api.delete("devices/:id") { request, context in
            try await guarded(request) { try await deleteDevice(try context.parameters.require("id")) }
        }
        api.put("devices/:id/attestation") { request, context in
            try await guarded(request) {
                try await putAttestation(try context.parameters.require("id"), request: request)
            }
        }
        api.get("devices/:id/attestation") { request, context in
            try await guarded(request) {
                let id = try context.parameters.require("id")
                guard let attestation = await store.read({ $0.dps.enrollments[id]?["attestation"] }) else {
                    return Self.notFound("attestation of device", id)
                }
                return try SandboxHTTP.json(Self.asServed(attestation).foundation)
            }
        }
        api.get("devices/:id/credentials") { request, context in
            try await guarded(request) {
                let id = try context.parameters.require("id")
                let state = await store.state
                guard state.central.devices[id] != nil else { return Self.notFound("device", id) }
                var credentials: [String: Any] = ["idScope": state.dps.idScope]
                if let attestation = state.dps.enrollments[id]?["attestation"], attestation["type"]?.string == "x509" {
                    credentials["x509"] = Self.asServed(attestation)["x509"]?.foundation
                }
                return try SandboxHTTP.json(credentials)
            }
        }
        api.put("enrollmentGroups/:id") { request, context in
            try await guarded(request) { try await putGroup(try context.parameters.require("id"), request: request) }
        }
        api.get("enrollmentGroups/:id") { request, context in
            try await guarded(request) {
                let id = try context.parameters.require("id")
                guard let group = await store.read({ $0.central.groups[id] }) else {
                    return Self.notFound("enrollment group", id)
                }
                return try SandboxHTTP.json(Self.publicGroup(group).foundation)
            }
        }
        api.put("enrollmentGroups/:id/certificates/:entry") { request, context in
            try await guarded(request) {
                try await putCertificate(
                    try context.parameters.require("id"), entry: try context.parameters.require("entry"),
                    request: request)
            }
        }
        api.post("enrollmentGroups/:id/certificates/:entry/generateVerificationCode") { request, context in
            try await guarded(request) {
                try await verificationCode(
                    try context.parameters.require("id"), entry: try context.parameters.require("entry"))
            }
        }
        api.post("enrollmentGroups/:id/certificates/:entry/verify") { request, context in
            try await guarded(request) {
                try await verify(
                    try context.parameters.require("id"), entry: try context.parameters.require("entry"),
                    request: request)
            }
        }
    }

    // MARK: Devices

    private func putDevice(_ id: String, request: Request) async throws -> Response {
        guard DPSServiceRoutes.isValidID(id) else {
            return Self.error(400, "InvalidDeviceId", "'\(id)' is not a device ID.")
        }
        guard let body = try await Self.body(request) else {
            return Self.error(400, "InvalidBody", "The body is not JSON.")
        }
        let device = try await store.update { state -> JSONValue in
            var device = state.central.devices[id] ?? .object([:])
            device["id"] = .string(id)
            device["displayName"] = body["displayName"] ?? device["displayName"] ?? .string(id)
            device["template"] = body["template"] ?? device["template"] ?? .null
            device["simulated"] = body["simulated"] ?? .bool(false)
            device["enabled"] = body["enabled"] ?? device["enabled"] ?? .bool(true)
            device["etag"] = .string(DPSServiceRoutes.newETag())
            state.central.devices[id] = device
            Self.applyEnabled(device, id: id, state: &state)
            return device
        }
        if device["enabled"]?.bool == false { hub.disconnect(deviceID: id) }
        return try SandboxHTTP.json(await view(device).foundation)
    }

    private func patchDevice(_ id: String, request: Request) async throws -> Response {
        guard let body = try await Self.body(request) else {
            return Self.error(400, "InvalidBody", "The body is not JSON.")
        }
        let device = try await store.update { state -> JSONValue? in
            guard var device = state.central.devices[id] else { return nil }
            for key in ["displayName", "template", "enabled", "simulated"] where body[key] != nil {
                device[key] = body[key]
            }
            device["etag"] = .string(DPSServiceRoutes.newETag())
            state.central.devices[id] = device
            Self.applyEnabled(device, id: id, state: &state)
            return device
        }
        guard let device else { return Self.notFound("device", id) }
        if device["enabled"]?.bool == false { hub.disconnect(deviceID: id) }
        return try SandboxHTTP.json(await view(device).foundation)
    }

    private func deleteDevice(_ id: String) async throws -> Response {
        let existed = try await store.update { state -> Bool in
            guard state.central.devices.removeValue(forKey: id) != nil else { return false }
            state.dps.enrollments[id] = nil
            state.dps.registrations[id] = nil
            state.hub.devices[id] = nil
            return true
        }
        guard existed else { return Self.notFound("device", id) }
        hub.disconnect(deviceID: id)
        return Response(status: .noContent)
    }

    private func putAttestation(_ id: String, request: Request) async throws -> Response {
        guard let body = try await Self.body(request), body["type"]?.string == "x509",
            let text = body[path: "x509", "clientCertificates", "primary", "certificate"]?.string
        else {
            return Self.error(
                400, "InvalidAttestation", "The attestation must be x509 with clientCertificates.primary.certificate.")
        }
        guard CertificateFacts(text: text) != nil else {
            return Self.error(400, "InvalidCertificate", "clientCertificates.primary.certificate is not a certificate.")
        }
        return try await store.update { state -> Response in
            guard let device = state.central.devices[id] else { return Self.notFound("device", id) }
            var attestation = body
            // DPS takes PEM; IoT Central also accepts base64 DER.
            for which in ["primary", "secondary"] {
                if let certificate = body[path: "x509", "clientCertificates", which, "certificate"]?.string,
                    let facts = CertificateFacts(text: certificate)
                {
                    var x509 = attestation["x509"] ?? .object([:])
                    var certificates = x509["clientCertificates"] ?? .object([:])
                    certificates[which] = .object(["certificate": .string(Self.pem(facts.der))])
                    x509["clientCertificates"] = certificates
                    attestation["x509"] = x509
                }
            }
            let enrollment: JSONValue = .object([
                "registrationId": .string(id), "deviceId": .string(id), "attestation": attestation,
                "provisioningStatus": .string(device["enabled"]?.bool == false ? "disabled" : "enabled"),
            ])
            switch DPSServiceRoutes.prepare(
                enrollment, kind: .individual, id: id, existing: state.dps.enrollments[id],
                registrations: state.dps.registrations)
            {
            case .success(let prepared):
                state.dps.enrollments[id] = prepared
                return try SandboxHTTP.json(Self.asServed(prepared["attestation"] ?? .null).foundation)
            case .failure(let problem):
                return Self.error(400, "InvalidAttestation", problem.message)
            }
        }
    }

    /// An X.509 attestation as IoT Central answers it: each certificate described by its SHA-1
    /// thumbprint (`info.sha1Thumbprint`, read-only), never the certificate itself.
    static func asServed(_ attestation: JSONValue) -> JSONValue {
        guard var certificates = attestation[path: "x509", "clientCertificates"] else { return attestation }
        for which in ["primary", "secondary"] {
            guard let thumbprint = certificates[path: which, "info", "sha1Thumbprint"] else { continue }
            certificates[which] = .object(["info": .object(["sha1Thumbprint": thumbprint])])
        }
        var served = attestation
        served["x509"]?["clientCertificates"] = certificates
        return served
    }

    /// `enabled: false` disables the device's DPS enrollment and hub identity; `true` enables them.
    private static func applyEnabled(_ device: JSONValue, id: String, state: inout SandboxState) {
        let enabled = device["enabled"]?.bool != false
        if var enrollment = state.dps.enrollments[id] {
            enrollment["provisioningStatus"] = .string(enabled ? "enabled" : "disabled")
            state.dps.enrollments[id] = enrollment
        }
        if var identity = state.hub.devices[id] {
            identity["status"] = .string(enabled ? "enabled" : "disabled")
            state.hub.devices[id] = identity
        }
    }

    /// The device as IoT Central shows it: `provisioned` once DPS assigned it.
    private func view(_ device: JSONValue) async -> JSONValue {
        var device = device
        let id = device["id"]?.string ?? ""
        device["provisioned"] = .bool(await store.read { $0.dps.registrations[id]?["status"]?.string } == "assigned")
        return device
    }

    // MARK: Enrollment groups

    private func putGroup(_ id: String, request: Request) async throws -> Response {
        guard let body = try await Self.body(request) else {
            return Self.error(400, "InvalidBody", "The body is not JSON.")
        }
        guard body[path: "attestation", "type"]?.string == "x509" else {
            return Self.error(400, "InvalidAttestation", "The sandbox's enrollment groups use x509 attestation.")
        }
        let group = try await store.update { state -> JSONValue in
            var group = state.central.groups[id] ?? .object([:])
            group["id"] = .string(id)
            group["displayName"] = body["displayName"] ?? .string(id)
            group["type"] = body["type"] ?? .string("iot")
            group["enabled"] = body["enabled"] ?? .bool(true)
            group["attestation"] = .object(["type": .string("x509")])
            group["etag"] = .string(DPSServiceRoutes.newETag())
            state.central.groups[id] = group
            Self.syncGroup(group, id: id, state: &state)
            return group
        }
        return try SandboxHTTP.json(Self.publicGroup(group).foundation)
    }

    private func putCertificate(_ id: String, entry: String, request: Request) async throws -> Response {
        guard entry == "primary" || entry == "secondary" else { return Self.notFound("certificate entry", entry) }
        guard let body = try await Self.body(request), let text = body["certificate"]?.string,
            let facts = CertificateFacts(text: text)
        else { return Self.error(400, "InvalidCertificate", "The body needs certificate (base64 DER or PEM).") }
        return try await store.update { state -> Response in
            guard var group = state.central.groups[id] else { return Self.notFound("enrollment group", id) }
            group["certificates", default: .object([:])][entry] = .object([
                "certificate": .string(Self.pem(facts.der)), "verified": .bool(body["verified"]?.bool == true),
                "info": facts.info,
            ])
            state.central.groups[id] = group
            Self.syncGroup(group, id: id, state: &state)
            return try SandboxHTTP.json(Self.publicEntry(group[path: "certificates", entry] ?? .null).foundation)
        }
    }

    private func verificationCode(_ id: String, entry: String) async throws -> Response {
        let code = Data(SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }).map { String(format: "%02X", $0) }
            .joined()
        return try await store.update { state -> Response in
            guard var group = state.central.groups[id], group[path: "certificates", entry] != nil else {
                return Self.notFound("certificate of enrollment group", id)
            }
            group["certificates", default: .object([:])][entry]?["verificationCode"] = .string(code)
            state.central.groups[id] = group
            return try SandboxHTTP.json(["verificationCode": code])
        }
    }

    /// Proof of possession: a certificate whose CN is the code, signed by the CA's key.
    private func verify(_ id: String, entry: String, request: Request) async throws -> Response {
        guard let body = try await Self.body(request), let text = body["certificate"]?.string,
            let proof = CertificateFacts(text: text)
        else { return Self.error(400, "InvalidCertificate", "The body needs certificate (base64 DER or PEM).") }
        return try await store.update { state -> Response in
            guard var group = state.central.groups[id], let stored = group[path: "certificates", entry],
                let pem = stored["certificate"]?.string, let ca = CertificateFacts(text: pem)
            else { return Self.notFound("certificate of enrollment group", id) }
            guard let code = stored["verificationCode"]?.string, proof.commonName == code else {
                return Self.error(400, "InvalidVerificationCode", "The certificate's CN is not the verification code.")
            }
            guard ca.certificate.publicKey.isValidSignature(proof.certificate.signature, for: proof.certificate) else {
                return Self.error(400, "InvalidProofOfPossession", "The certificate is not signed by the CA's key.")
            }
            group["certificates", default: .object([:])][entry]?["verified"] = .bool(true)
            group["certificates", default: .object([:])][entry]?["verificationCode"] = nil
            state.central.groups[id] = group
            Self.syncGroup(group, id: id, state: &state)
            return Response(status: .noContent)
        }
    }

    /// The DPS enrollment group behind a Central group: verified certificates only.
    private static func syncGroup(_ group: JSONValue, id: String, state: inout SandboxState) {
        var signing: [String: JSONValue] = [:]
        for entry in ["primary", "secondary"] {
            if let stored = group[path: "certificates", entry], stored["verified"]?.bool == true,
                let pem = stored["certificate"]?.string
            {
                signing[entry] = .object(["certificate": .string(pem)])
            }
        }
        guard !signing.isEmpty else {
            state.dps.groups[id] = nil
            return
        }
        let enrollment: JSONValue = .object([
            "enrollmentGroupId": .string(id),
            "attestation": .object([
                "type": .string("x509"), "x509": .object(["signingCertificates": .object(signing)]),
            ]),
            "provisioningStatus": .string(group["enabled"]?.bool == false ? "disabled" : "enabled"),
        ])
        if case .success(let prepared) = DPSServiceRoutes.prepare(
            enrollment, kind: .group, id: id, existing: state.dps.groups[id], registrations: state.dps.registrations)
        {
            state.dps.groups[id] = prepared
        }
    }

    private static func publicGroup(_ group: JSONValue) -> JSONValue {
        var group = group
        group["certificates"] = nil
        return group
    }

    private static func publicEntry(_ entry: JSONValue) -> JSONValue {
        var entry = entry
        entry["verificationCode"] = nil
        return entry
    }

    // MARK: Plumbing

    private static func pem(_ der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n\(base64)\n-----END CERTIFICATE-----\n"
    }

    private static func body(_ request: Request) async throws -> JSONValue? {
        let buffer = try await request.body.collect(upTo: 256 * 1024)
        guard let json = JSONValue.parse(buffer.readableBytesView), json.object != nil else { return nil }
        return json
    }

    /// api-version, then the API token (`SharedAccessSignature sr=…&sig=…&skn=…&se=<ms>`) or an AAD bearer token.
    private func guarded(_ request: Request, _ body: () async throws -> Response) async throws -> Response {
        guard let version = request.uri.queryParameters.get("api-version"), Self.apiVersions.contains(version) else {
            return Self.error(400, "InvalidApiVersion", "A supported api-version query parameter is required.")
        }
        let header = request.headers[.authorization] ?? ""
        if header.hasPrefix("Bearer ") {
            guard tokens.verify(String(header.dropFirst(7)), scope: Self.scope) != nil else {
                return Self.error(401, "Unauthorized", "The bearer token is not valid for IoT Central.")
            }
            return try await body()
        }
        let central = await store.state.central
        guard CentralAPIToken.verify(header, central: central) else {
            return Self.error(401, "Unauthorized", "The API token is missing, expired or wrong.")
        }
        return try await body()
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        SandboxHTTP.error(.central, status: status, code: code, message: message)
    }

    static func notFound(_ what: String, _ id: String) -> Response {
        error(404, "NotFound", "No \(what) '\(id)'.")
    }
}

/// IoT Central API tokens: `SharedAccessSignature sr=<app id>&sig=<base64 HMAC>&skn=<token name>&se=<ms>`,
/// the signature over `sr + "\n" + se` with the app's token key.
enum CentralAPIToken {
    static func make(central: CentralState, lifetime: TimeInterval = 365 * 86_400) -> String {
        let se = String(Int64((Date().timeIntervalSince1970 + lifetime) * 1000))
        let sr = central.appName
        let key = SymmetricKey(data: Data(base64Encoded: central.apiTokenKey) ?? Data())
        let mac = Data(HMAC<SHA256>.authenticationCode(for: Array((sr + "\n" + se).utf8), using: key))
            .base64EncodedString()
        let sig = mac.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? mac
        return "SharedAccessSignature sr=\(sr)&sig=\(sig)&skn=\(central.apiTokenName)&se=\(se)"
    }

    static func verify(_ header: String, central: CentralState, now: Date = Date()) -> Bool {
        guard header.hasPrefix("SharedAccessSignature ") else { return false }
        var fields: [String: String] = [:]
        for pair in header.dropFirst("SharedAccessSignature ".count).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard let sr = fields["sr"], let sig = fields["sig"], let se = fields["se"], let milliseconds = Double(se),
            fields["skn"] == central.apiTokenName, sr == central.appName,
            milliseconds / 1000 > now.timeIntervalSince1970,
            let given = Data(base64Encoded: sig.removingPercentEncoding ?? sig)
        else { return false }
        let key = SymmetricKey(data: Data(base64Encoded: central.apiTokenKey) ?? Data())
        return HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Array((sr + "\n" + se).utf8), using: key)
    }
}
