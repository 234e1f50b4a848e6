public import AsyncHTTPClient
import Foundation
public import KeygatePKI
import NIOHTTP1

/// The DPS service API (docs/azure.md): individual enrollments with X.509 client certificates, created,
/// replaced, enabled or disabled idempotently (read the ETag, then PUT the whole enrollment with If-Match:
/// every PUT carries the certificates themselves), deleted; registration states.
public struct DPSServiceClient: Sendable {
    /// The DPS service API version Keygate sends.
    public static let apiVersion = "2021-10-01"
    /// The service's host and shared-access policy, from the connection string.
    public let credentials: SharedAccessSignatureToken.ConnectionString
    let client: AzureJSONClient

    /// DPS's published throttle on service operations (enrollment reads and writes, bulk operations
    /// each counting one), per instance: 1,000 a minute.
    public static let publishedOperationsPerMinute = 1_000

    /// A client for the DPS in `connectionString` (`HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`);
    /// `pacer` spaces its calls under the service's throttle.
    public init(
        connectionString: String, http: HTTPClient, policy: AzureRequestPolicy = .standard, pacer: CallPacer? = nil
    ) throws {
        let credentials = try SharedAccessSignatureToken.ConnectionString(connectionString)
        self.credentials = credentials
        client = AzureJSONClient(sas: credentials, service: "DPS", http: http, policy: policy, pacer: pacer)
    }

    /// What Keygate puts in an individual enrollment.
    public struct Enrollment: Sendable, Hashable {
        /// The registration ID: Keygate's device ID.
        public var registrationID: String
        /// The hub device ID DPS assigns; `nil`: the registration ID.
        public var deviceID: String?
        /// The device's current certificate (PEM); `secondaryCertificate` is the previous one during renewal.
        public var primaryCertificate: String
        /// The previous certificate (PEM) while it is valid, so the device can still register with it.
        public var secondaryCertificate: String?
        /// `provisioningStatus`: a disabled enrollment cannot register.
        public var enabled: Bool
        /// A hub to assign the device to; `nil`: the DPS allocation policy decides.
        public var iotHubHostName: String?

        /// An enrollment with the device's current certificate and, during a renewal, the previous one.
        public init(
            registrationID: String, deviceID: String? = nil, primaryCertificate: String,
            secondaryCertificate: String? = nil, enabled: Bool = true, iotHubHostName: String? = nil
        ) {
            self.registrationID = registrationID
            self.deviceID = deviceID
            self.primaryCertificate = primaryCertificate
            self.secondaryCertificate = secondaryCertificate
            self.enabled = enabled
            self.iotHubHostName = iotHubHostName
        }

        var body: [String: Any] {
            var certificates: [String: Any] = ["primary": ["certificate": primaryCertificate]]
            if let secondaryCertificate { certificates["secondary"] = ["certificate": secondaryCertificate] }
            var body: [String: Any] = [
                "registrationId": registrationID,
                "attestation": ["type": "x509", "x509": ["clientCertificates": certificates]],
                "provisioningStatus": enabled ? "enabled" : "disabled",
                "capabilities": ["iotEdge": false],
            ]
            if let deviceID { body["deviceId"] = deviceID }
            if let iotHubHostName { body["iotHubHostName"] = iotHubHostName }
            return body
        }
    }

    /// The enrollment as DPS has it, or `nil`.
    public func enrollment(_ registrationID: String) async throws -> [String: Any]? {
        let answer = try await client.call(
            .GET, "/enrollments/\(AzureJSONClient.segment(registrationID))?api-version=\(Self.apiVersion)")
        if answer.status == 404 { return nil }
        guard answer.status == 200 else { throw client.refused(answer, "reading enrollment \(registrationID)") }
        return answer.json
    }

    /// Creates or replaces the enrollment; safe to repeat. Answers the new ETag.
    @discardableResult
    public func put(_ enrollment: Enrollment) async throws -> String {
        let path = "/enrollments/\(AzureJSONClient.segment(enrollment.registrationID))?api-version=\(Self.apiVersion)"
        for _ in 0..<3 {
            let current = try await self.enrollment(enrollment.registrationID)
            var body = enrollment.body
            var headers: [(String, String)] = []
            if let etag = current?["etag"] as? String {
                body["etag"] = etag
                headers.append(("If-Match", etag))
            }
            let answer = try await client.call(.PUT, path, body: body, headers: headers)
            if answer.status == 200 || answer.status == 201 { return answer.json["etag"] as? String ?? "" }
            // Someone changed it between our read and write: read again.
            if answer.status == 412 || answer.status == 409 { continue }
            throw client.refused(answer, "writing enrollment \(enrollment.registrationID)")
        }
        throw KeygateError(
            .azureUnavailable, "the enrollment \(enrollment.registrationID) keeps changing", retryAfter: 2)
    }

    /// How many enrollments one bulk operation may carry (DPS: `BulkEnrollmentOperation`).
    public static let bulkLimit = 10

    /// Creates or replaces up to ``bulkLimit`` enrollments in one call (`POST /enrollments`, mode
    /// `update`: created when missing, replaced otherwise, no ETag). Answers the refusals DPS listed
    /// per registration ID (the others were written); throws when the call as a whole failed.
    ///
    /// ```
    /// BulkEnrollmentOperation { enrollments: [IndividualEnrollment], mode: "update" }
    /// BulkEnrollmentOperationResult { isSuccessful, errors: [{ registrationId, errorCode, errorStatus }] }
    /// ```
    public func bulkPut(_ enrollments: [Enrollment]) async throws -> [String: KeygateError] {
        guard !enrollments.isEmpty else { return [:] }
        guard enrollments.count <= Self.bulkLimit else {
            throw KeygateError(.malformedInput, "a bulk operation carries at most \(Self.bulkLimit) enrollments")
        }
        let answer = try await client.call(
            .POST, "/enrollments?api-version=\(Self.apiVersion)",
            body: ["mode": "update", "enrollments": enrollments.map(\.body)])
        guard answer.status == 200 else { throw client.refused(answer, "a bulk enrollment operation") }
        var refusals: [String: KeygateError] = [:]
        for error in answer.json["errors"] as? [[String: Any]] ?? [] {
            guard let id = error["registrationId"] as? String else { continue }
            let code = error["errorCode"] as? Int ?? 0
            let status = code >= 100_000 ? code / 1000 : code
            let message =
                "DPS refused enrollment \(id) (HTTP \(status), errorCode \(code): \(error["errorStatus"] as? String ?? ""); in a bulk operation)"
            let transient = status == 408 || status == 409 || status == 412 || status == 429 || status >= 500
            refusals[id] = KeygateError(
                transient ? .azureConflict : .azureRefused, message, retryAfter: transient ? 2 : nil)
        }
        return refusals
    }

    /// Enables or disables an existing enrollment (`enrollment.enabled`), writing it whole: DPS's GET
    /// describes certificates by `info` only and a PUT must carry the certificates themselves, so the
    /// body is built from what Keygate issued, never echoed from the GET. A missing enrollment is left
    /// alone (answers false).
    @discardableResult
    public func setEnabled(_ enrollment: Enrollment) async throws -> Bool {
        let id = enrollment.registrationID
        let path = "/enrollments/\(AzureJSONClient.segment(id))?api-version=\(Self.apiVersion)"
        for _ in 0..<3 {
            guard let current = try await self.enrollment(id) else { return false }
            var body = enrollment.body
            var headers: [(String, String)] = []
            if let etag = current["etag"] as? String {
                body["etag"] = etag
                headers.append(("If-Match", etag))
            }
            let answer = try await client.call(.PUT, path, body: body, headers: headers)
            if answer.status == 200 || answer.status == 201 { return true }
            if answer.status == 412 || answer.status == 409 { continue }
            throw client.refused(answer, "updating enrollment \(id)")
        }
        throw KeygateError(.azureUnavailable, "the enrollment \(id) keeps changing", retryAfter: 2)
    }

    /// Deletes the enrollment; a missing one is fine.
    public func delete(_ registrationID: String) async throws {
        let answer = try await client.call(
            .DELETE, "/enrollments/\(AzureJSONClient.segment(registrationID))?api-version=\(Self.apiVersion)")
        guard answer.status == 204 || answer.status == 200 || answer.status == 404 else {
            throw client.refused(answer, "deleting enrollment \(registrationID)")
        }
    }

    /// A harmless authenticated call: how many enrollments the first page of a query holds.
    public func probe() async throws -> Int {
        let answer = try await client.call(
            .POST, "/enrollments/query?api-version=\(Self.apiVersion)", body: ["query": "*"],
            headers: [("x-ms-max-item-count", "10")])
        guard answer.status == 200 else { throw client.refused(answer, "querying enrollments") }
        return ((try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [Any])?.count ?? 0
    }
}
