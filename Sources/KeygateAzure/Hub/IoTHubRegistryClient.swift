public import AsyncHTTPClient
import Foundation
import KeygatePKI
import NIOHTTP1

/// IoT Hub's registry REST (docs/azure.md): read a device identity, enable or disable it (If-Match with its
/// ETag), delete it. DPS creates identities; Keygate changes their status for quarantine.
public struct IoTHubRegistryClient: Sendable {
    /// The IoT Hub registry API version Keygate sends.
    public static let apiVersion = "2021-04-12"
    /// The hub's host and shared-access policy, from the connection string.
    public let credentials: SharedAccessSignatureToken.ConnectionString
    let client: AzureJSONClient

    /// Azure's published identity-registry throttle for one S1 (or S2) unit: operations a minute.
    public static let publishedOperationsPerMinute = 100

    /// A client for the hub in `connectionString` (`HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`);
    /// `pacer` keeps its calls under the hub's registry throttle.
    public init(
        connectionString: String, http: HTTPClient, policy: AzureRequestPolicy = .standard, pacer: CallPacer? = nil
    ) throws {
        let credentials = try SharedAccessSignatureToken.ConnectionString(connectionString)
        self.credentials = credentials
        client = AzureJSONClient(sas: credentials, service: "IoT Hub", http: http, policy: policy, pacer: pacer)
    }

    /// The device identity as the hub has it, or `nil` when it has none.
    public func device(_ id: String) async throws -> [String: Any]? {
        let answer = try await client.call(
            .GET, "/devices/\(AzureJSONClient.segment(id))?api-version=\(Self.apiVersion)")
        if answer.status == 404 { return nil }
        guard answer.status == 200 else { throw client.refused(answer, "reading device \(id)") }
        return answer.json
    }

    /// Sets the device's status; a device the hub does not know is left alone (answers false).
    @discardableResult
    public func setStatus(_ id: String, enabled: Bool, reason: String? = nil) async throws -> Bool {
        for _ in 0..<3 {
            guard var device = try await device(id) else { return false }
            device["status"] = enabled ? "enabled" : "disabled"
            if let reason { device["statusReason"] = reason }
            let etag = device["etag"] as? String ?? "*"
            let answer = try await client.call(
                .PUT, "/devices/\(AzureJSONClient.segment(id))?api-version=\(Self.apiVersion)", body: device,
                headers: [("If-Match", "\"\(etag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))\"")])
            if answer.status == 200 { return true }
            if answer.status == 412 { continue }
            throw client.refused(answer, "updating device \(id)")
        }
        throw KeygateError(.azureUnavailable, "the device \(id) keeps changing", retryAfter: 2)
    }

    /// Deletes the device identity (`If-Match: *`); a missing one is fine.
    public func delete(_ id: String) async throws {
        let answer = try await client.call(
            .DELETE, "/devices/\(AzureJSONClient.segment(id))?api-version=\(Self.apiVersion)",
            headers: [("If-Match", "*")])
        guard answer.status == 204 || answer.status == 200 || answer.status == 404 else {
            throw client.refused(answer, "deleting device \(id)")
        }
    }
}
