import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The DPS service API (what a connector or `ProvisioningServiceClient` calls): individual
/// enrollments and enrollment groups (create/replace with ETag and If-Match, get, delete, query
/// with continuation, bulk of at most 10) and registration states, behind SAS policies.
struct DPSServiceRoutes {
    let store: SandboxStore
    let hub: HubRegistry

    static let apiVersions: Set<String> = ["2018-09-01-preview", "2019-03-31", "2021-06-01", "2021-10-01"]

    /// Individual enrollments and enrollment groups share their shapes.
    enum Kind: Sendable {
        case individual
        case group

        var idField: String { self == .individual ? "registrationId" : "enrollmentGroupId" }
        var itemType: String { self == .individual ? "Enrollment" : "EnrollmentGroup" }
        var noun: String { self == .individual ? "enrollment" : "enrollment group" }

        func records(_ dps: DPSState) -> [String: JSONValue] { self == .individual ? dps.enrollments : dps.groups }
        func set(_ id: String, _ value: JSONValue?, in dps: inout DPSState) {
            if self == .individual { dps.enrollments[id] = value } else { dps.groups[id] = value }
            if self == .individual, value != nil { dps.enrollmentWrites?[id, default: 0] += 1 }
            if self == .individual, value != nil, dps.enrollmentWrites == nil { dps.enrollmentWrites = [id: 1] }
        }
    }

    func register(on router: Router<SandboxContext>) {
        for (path, kind) in [("enrollments", Kind.individual), ("enrollmentGroups", Kind.group)] {
            router.put("\(path)/:id") { request, context in
                try await guarded(request, right: "EnrollmentWrite") {
                    try await put(kind, id: try context.parameters.require("id"), request: request)
                }
            }
            router.get("\(path)/:id") { request, context in
                try await guarded(request, right: "EnrollmentRead") {
                    try await get(kind, id: try context.parameters.require("id"))
                }
            }
            router.delete("\(path)/:id") { request, context in
                try await guarded(request, right: "EnrollmentWrite") {
                    try await delete(kind, id: try context.parameters.require("id"), request: request)
                }
            }
            router.post("\(path)/query") { request, _ in
                try await guarded(request, right: "EnrollmentRead") { try await query(kind, request: request) }
            }
            router.post(RouterPath(path)) { request, _ in
                try await guarded(request, right: "EnrollmentWrite") { try await bulk(kind, request: request) }
            }
        }
        router.get("registrations/:id") { request, context in
            try await guarded(request, right: "RegistrationStatusRead") {
                let id = try context.parameters.require("id")
                guard let registration = await store.read({ $0.dps.registrations[id] }) else {
                    return Self.error(404, "No registration '\(id)'.", sub: 2)
                }
                return try SandboxHTTP.json(registration.foundation)
            }
        }
        router.delete("registrations/:id") { request, context in
            try await guarded(request, right: "RegistrationStatusWrite") {
                let id = try context.parameters.require("id")
                let removed = try await store.update { state -> Bool in
                    state.dps.registrations.removeValue(forKey: id) != nil
                }
                return removed ? Response(status: .noContent) : Self.error(404, "No registration '\(id)'.", sub: 2)
            }
        }
        router.post("registrations/:id/query") { request, context in
            try await guarded(request, right: "RegistrationStatusRead") {
                let group = try context.parameters.require("id")
                let states = await store.state.dps.registrations.values.filter {
                    $0[path: "x509", "enrollmentGroupId"]?.string == group
                        || $0[path: "symmetricKey", "enrollmentGroupId"]?.string == group
                }
                return try page(
                    states.sorted { ($0["registrationId"]?.string ?? "") < ($1["registrationId"]?.string ?? "") },
                    request: request, itemType: "DeviceRegistration")
            }
        }
    }

    // MARK: Enrollments

    private func put(_ kind: Kind, id: String, request: Request) async throws -> Response {
        guard Self.isValidID(id) else {
            return Self.error(400, "'\(id)' is not a valid \(kind.idField): up to 128 of A-Z a-z 0-9 : . _ -", sub: 4)
        }
        let body = try await request.body.collect(upTo: 512 * 1024)
        guard let json = JSONValue.parse(body.readableBytesView), json.object != nil else {
            return Self.error(400, "The body is not a JSON \(kind.noun).", sub: 4)
        }
        let ifMatch = request.headers[.ifMatch]
        return try await store.update { state -> Response in
            let existing = kind.records(state.dps)[id]
            if let ifMatch, !Self.etagMatches(ifMatch, existing) {
                return Self.error(412, "The ETag does not match (If-Match: \(ifMatch)).", sub: 1)
            }
            let prepared: JSONValue
            switch Self.prepare(json, kind: kind, id: id, existing: existing, registrations: state.dps.registrations) {
            case .success(let value): prepared = value
            case .failure(let problem): return Self.error(400, problem.message, sub: 4)
            }
            kind.set(id, prepared, in: &state.dps)
            return try SandboxHTTP.json(Self.asServed(prepared).foundation)
        }
    }

    private func get(_ kind: Kind, id: String) async throws -> Response {
        guard let record = await store.read({ kind.records($0.dps)[id] }) else {
            return Self.error(404, "No \(kind.noun) '\(id)'.", sub: 2)
        }
        return try SandboxHTTP.json(Self.asServed(record).foundation)
    }

    private func delete(_ kind: Kind, id: String, request: Request) async throws -> Response {
        let ifMatch = request.headers[.ifMatch]
        return try await store.update { state -> Response in
            guard let existing = kind.records(state.dps)[id] else {
                return Self.error(404, "No \(kind.noun) '\(id)'.", sub: 2)
            }
            if let ifMatch, !Self.etagMatches(ifMatch, existing) {
                return Self.error(412, "The ETag does not match (If-Match: \(ifMatch)).", sub: 1)
            }
            kind.set(id, nil, in: &state.dps)
            if kind == .individual { state.dps.registrations[id] = nil }
            return Response(status: .noContent)
        }
    }

    private func query(_ kind: Kind, request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 * 1024)
        guard let json = JSONValue.parse(body.readableBytesView), let text = json["query"]?.string else {
            return Self.error(400, "The body must be {\"query\": \"*\"}.", sub: 4)
        }
        guard text.trimmingCharacters(in: .whitespaces) == "*" || text.uppercased().hasPrefix("SELECT *") else {
            return Self.error(400, "The sandbox answers the query \"*\" only.", sub: 4)
        }
        let records = kind.records(await store.state.dps).sorted { $0.key < $1.key }.map { Self.asServed($0.value) }
        return try page(records, request: request, itemType: kind.itemType)
    }

    /// One page of `records`, continued by `x-ms-continuation` (an offset), sized by `x-ms-max-item-count`.
    private func page(_ records: [JSONValue], request: Request, itemType: String) throws -> Response {
        let size = request.headers[.msMaxItemCount].flatMap(Int.init).map { min(max($0, 1), 1000) } ?? 100
        let start = request.headers[.msContinuation].flatMap(Int.init).map { min(max($0, 0), records.count) } ?? 0
        let end = min(start + size, records.count)
        var headers: HTTPFields = [.msItemType: itemType]
        if end < records.count { headers[.msContinuation] = String(end) }
        return try SandboxHTTP.json(records[start..<end].map(\.foundation), headers: headers)
    }

    private func bulk(_ kind: Kind, request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 2 * 1024 * 1024)
        guard let json = JSONValue.parse(body.readableBytesView), let items = json["enrollments"]?.array,
            let mode = json["mode"]?.string
        else { return Self.error(400, "The body must be {\"enrollments\": [...], \"mode\": \"...\"}.", sub: 4) }
        guard ["create", "update", "updateIfMatchETag", "delete"].contains(mode) else {
            return Self.error(400, "mode is create, update, updateIfMatchETag or delete, not '\(mode)'.", sub: 4)
        }
        guard (1...10).contains(items.count) else {
            return Self.error(400, "A bulk operation takes 1 to 10 items, not \(items.count).", sub: 4)
        }
        return try await store.update { state -> Response in
            var errors: [Any] = []
            var invalid = 0
            for item in items {
                let id = item[kind.idField]?.string ?? ""
                func fail(_ status: Int, _ message: String) {
                    errors.append([kind.idField: id, "errorCode": status * 1000 + 1, "errorStatus": message])
                    if ![404, 409, 412].contains(status) { invalid += 1 }
                }
                guard Self.isValidID(id) else {
                    fail(400, "invalid \(kind.idField)")
                    continue
                }
                let existing = kind.records(state.dps)[id]
                switch mode {
                case "delete":
                    if existing == nil { fail(404, "not found") } else { kind.set(id, nil, in: &state.dps) }
                    continue
                case "create" where existing != nil:
                    fail(409, "already exists")
                    continue
                case "updateIfMatchETag":
                    if let etag = item["etag"]?.string, !Self.etagMatches(etag, existing) {
                        fail(412, "etag mismatch")
                        continue
                    }
                default:
                    break
                }
                switch Self.prepare(item, kind: kind, id: id, existing: existing, registrations: state.dps.registrations) {
                case .success(let value): kind.set(id, value, in: &state.dps)
                case .failure(let problem): fail(400, problem.message)
                }
            }
            // The fault middleware counts the items refused as invalid, as it counts refused calls.
            return try SandboxHTTP.json(
                ["isSuccessful": errors.isEmpty, "errors": errors],
                headers: invalid > 0 ? [SandboxSurface.refusedItemsHeader: String(invalid)] : [:])
        }
    }

    // MARK: Rules

    /// A record as DPS answers it: an X.509 attestation describes each certificate by the `info` the
    /// service filled in and never returns the certificate itself (a PUT must send it again).
    static func asServed(_ record: JSONValue) -> JSONValue {
        guard var x509 = record[path: "attestation", "x509"] else { return record }
        for slot in ["clientCertificates", "signingCertificates"] {
            guard var certificates = x509[slot] else { continue }
            for which in ["primary", "secondary"] where certificates[which] != nil {
                certificates[which]?["certificate"] = nil
            }
            x509[slot] = certificates
        }
        var served = record
        served["attestation"]?["x509"] = x509
        return served
    }

    struct Problem: Error {
        var message: String
    }

    /// Fills in what the service owns (etag, times, attestation info, keys) and checks the rest.
    static func prepare(
        _ body: JSONValue, kind: Kind, id: String, existing: JSONValue?, registrations: [String: JSONValue]
    ) -> Result<JSONValue, Problem> {
        var record = body
        if let given = record[kind.idField]?.string, given != id {
            return .failure(Problem(message: "\(kind.idField) '\(given)' does not match the path '\(id)'."))
        }
        record[kind.idField] = .string(id)
        guard var attestation = record["attestation"], let type = attestation["type"]?.string else {
            return .failure(Problem(message: "attestation with a type is required."))
        }
        switch type {
        case "x509":
            let slot = kind == .individual ? "clientCertificates" : "signingCertificates"
            let hasCA = attestation[path: "x509", "caReferences", "primary"]?.string != nil
            guard attestation[path: "x509", slot, "primary"] != nil || hasCA else {
                return .failure(Problem(message: "an x509 attestation needs x509.\(slot).primary or caReferences."))
            }
            for which in ["primary", "secondary"] {
                guard var entry = attestation[path: "x509", slot, which], entry != .null else { continue }
                guard let text = entry["certificate"]?.string, let facts = CertificateFacts(text: text) else {
                    return .failure(Problem(message: "x509.\(slot).\(which).certificate is not a certificate."))
                }
                entry["info"] = facts.info
                var x509 = attestation["x509"] ?? .object([:])
                var certificates = x509[slot] ?? .object([:])
                certificates[which] = entry
                x509[slot] = certificates
                attestation["x509"] = x509
            }
        case "symmetricKey":
            var keys = attestation["symmetricKey"] ?? .object([:])
            for name in ["primaryKey", "secondaryKey"] where keys[name]?.string == nil {
                keys[name] = .string(
                    Data(SymmetricKey(size: .init(bitCount: 512)).withUnsafeBytes { Array($0) }).base64EncodedString())
            }
            attestation["symmetricKey"] = keys
        case "tpm":
            guard attestation[path: "tpm", "endorsementKey"]?.string != nil else {
                return .failure(Problem(message: "a tpm attestation needs tpm.endorsementKey."))
            }
        default:
            return .failure(Problem(message: "attestation.type is x509, symmetricKey or tpm, not '\(type)'."))
        }
        record["attestation"] = attestation
        let status = record["provisioningStatus"]?.string ?? "enabled"
        guard status == "enabled" || status == "disabled" else {
            return .failure(Problem(message: "provisioningStatus is enabled or disabled, not '\(status)'."))
        }
        record["provisioningStatus"] = .string(status)
        if record["capabilities"] == nil || record["capabilities"] == .null {
            record["capabilities"] = .object(["iotEdge": .bool(false)])
        }
        let now = ISO8601DateFormatter().string(from: Date())
        record["createdDateTimeUtc"] = existing?["createdDateTimeUtc"] ?? .string(now)
        record["lastUpdatedDateTimeUtc"] = .string(now)
        record["etag"] = .string(newETag())
        if kind == .individual { record["registrationState"] = registrations[id] }
        return .success(record)
    }

    static func newETag() -> String {
        Data(("\"" + UUID().uuidString.lowercased() + "\"").utf8).base64EncodedString()
    }

    static func etagMatches(_ given: String, _ record: JSONValue?) -> Bool {
        let trimmed = given.trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        if trimmed == "*" { return record != nil }
        guard let etag = record?["etag"]?.string else { return false }
        return etag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) == trimmed
    }

    static func isValidID(_ id: String) -> Bool {
        (1...128).contains(id.count)
            && id.unicodeScalars.allSatisfy {
                CharacterSet.alphanumerics.contains($0) && $0.isASCII || ":._-".unicodeScalars.contains($0)
            }
    }

    // MARK: Plumbing

    /// Checks api-version and the SAS token (with `right`) before `body` runs.
    private func guarded(_ request: Request, right: String, _ body: () async throws -> Response) async throws
        -> Response
    {
        guard let version = request.uri.queryParameters.get("api-version") else {
            return Self.error(400, "The api-version query parameter is required.", sub: 4)
        }
        guard Self.apiVersions.contains(version) else {
            return Self.error(400, "api-version '\(version)' is not supported.", sub: 4)
        }
        let policies = await store.read { $0.dps.policies }
        switch SharedAccessSignature.verify(
            header: request.headers[.authorization], host: request.head.authority, policies: policies, right: right)
        {
        case .success: return try await body()
        case .failure(let failure): return Self.error(401, failure.message, sub: 2)
        }
    }

    static func error(_ status: Int, _ message: String, sub: Int) -> Response {
        SandboxHTTP.dpsError(status: status, subcode: sub, message: message)
    }
}

extension HTTPField.Name {
    static let msContinuation = Self("x-ms-continuation")!
    static let msMaxItemCount = Self("x-ms-max-item-count")!
    static let msItemType = Self("x-ms-item-type")!
}
