public import AsyncHTTPClient
import Foundation
import KeygatePKI
import NIOHTTP1

/// IoT Central's REST API (docs/azure.md): a device plus its X.509 attestation, `enabled`, deletion, and
/// the credentials that tell a device the app's DPS ID scope.
public struct IoTCentralClient: Sendable {
    /// The IoT Central REST API version Keygate sends.
    public static let apiVersion = "2022-07-31"
    let client: AzureJSONClient

    /// IoT Central's published REST API throttle per application: 20 calls a second.
    public static let publishedCallsPerMinute = 1_200

    /// With an API token (`SharedAccessSignature sr=…`) or an AAD token provider; `pacer` spaces the
    /// calls under the app's throttle.
    public init(
        appURL: String, apiToken: String? = nil, tokens: AADTokenProvider? = nil, http: HTTPClient,
        policy: AzureRequestPolicy = .standard, pacer: CallPacer? = nil
    ) throws {
        guard apiToken != nil || tokens != nil else {
            throw KeygateError(.malformedInput, "IoT Central needs an API token or AAD client credentials")
        }
        client = AzureJSONClient(
            baseURL: appURL, service: "IoT Central", http: http, policy: policy, pacer: pacer,
            authorization: {
                if let apiToken { return apiToken }
                return "Bearer " + (try await tokens!.token())
            })
    }

    /// The AAD scope of IoT Central's API, for client-credentials tokens.
    public static let aadScope = "https://apps.azureiotcentral.com/.default"

    /// Creates or updates the device and its attestation (the device's certificate, PEM).
    public func putDevice(
        _ id: String, displayName: String, template: String? = nil, enabled: Bool, certificate: String,
        secondaryCertificate: String? = nil
    ) async throws {
        var device: [String: Any] = ["displayName": displayName, "simulated": false, "enabled": enabled]
        if let template { device["template"] = template }
        let path = "/api/devices/\(AzureJSONClient.segment(id))"
        let answer = try await client.call(.PUT, path + "?api-version=\(Self.apiVersion)", body: device)
        guard answer.status == 200 || answer.status == 201 else { throw client.refused(answer, "writing device \(id)") }
        var certificates: [String: Any] = ["primary": ["certificate": certificate]]
        if let secondaryCertificate { certificates["secondary"] = ["certificate": secondaryCertificate] }
        let attestation = try await client.call(
            .PUT, path + "/attestation?api-version=\(Self.apiVersion)",
            body: ["type": "x509", "x509": ["clientCertificates": certificates]])
        guard attestation.status == 200 || attestation.status == 201 else {
            throw client.refused(attestation, "writing the attestation of \(id)")
        }
    }

    /// `enabled: false` blocks the device (DPS and hub); true lets it back.
    public func setEnabled(_ id: String, _ enabled: Bool) async throws {
        let answer = try await client.call(
            .PATCH, "/api/devices/\(AzureJSONClient.segment(id))?api-version=\(Self.apiVersion)",
            body: ["enabled": enabled])
        guard answer.status == 200 || answer.status == 404 else {
            throw client.refused(answer, "updating device \(id)")
        }
    }

    /// Deletes the device (and so its DPS enrollment); a missing one is fine.
    public func deleteDevice(_ id: String) async throws {
        let answer = try await client.call(
            .DELETE, "/api/devices/\(AzureJSONClient.segment(id))?api-version=\(Self.apiVersion)")
        guard answer.status == 204 || answer.status == 200 || answer.status == 404 else {
            throw client.refused(answer, "deleting device \(id)")
        }
    }

    /// The app's DPS ID scope, from a device's credentials.
    public func idScope(deviceID: String) async throws -> String? {
        let answer = try await client.call(
            .GET, "/api/devices/\(AzureJSONClient.segment(deviceID))/credentials?api-version=\(Self.apiVersion)")
        if answer.status == 404 { return nil }
        guard answer.status == 200 else { throw client.refused(answer, "reading the credentials of \(deviceID)") }
        return answer.json["idScope"] as? String
    }

    /// A harmless authenticated call: looks a device up by an ID no one uses.
    public func probe() async throws {
        let answer = try await client.call(.GET, "/api/devices/keygate-connector-test?api-version=\(Self.apiVersion)")
        guard answer.status == 200 || answer.status == 404 else { throw client.refused(answer, "the test call") }
    }
}
