import AsyncHTTPClient
import Foundation
import KeygateAzure
public import KeygateDomain
import KeygatePKI
import SwiftASN1
import X509

/// Opens a connector's secrets and talks to its Azure service: the one place that knows what each
/// outbox action means for DPS and for IoT Central.
public struct ConnectorClient: Sendable {
    /// The connector this client talks for.
    public let connector: Connector
    let service: Service

    /// The Azure service a connector talks to: DPS (with the IoT Hub registry when a hub connection
    /// string is given, to disable and delete hub identities), or IoT Central.
    enum Service: Sendable {
        case dps(DPSServiceClient, hub: IoTHubRegistryClient?)
        case central(IoTCentralClient)
    }

    /// Opens the connector's secrets and makes its clients, each paced under its service's throttle:
    /// ``Connector/Settings/maxCallsPerMinute`` for DPS or IoT Central and
    /// ``Connector/Settings/hubCallsPerMinute`` for the hub (Azure's published limits by default), split
    /// evenly over the deployment's live nodes.
    public init(_ connector: Connector, secrets: SecretBox?) throws {
        self.connector = connector
        func secret(_ name: String) throws -> String? {
            guard let sealed = connector.sealedSecrets[name] else { return nil }
            guard let secrets else {
                throw KeygateError(.passphraseMissing, "the connector's secrets are sealed with the CA passphrase")
            }
            return try secrets.open(sealed)
        }
        let http = AzureHTTPClients.client(trusting: connector.settings.caCertificate)
        switch connector.kind {
        case .dps:
            guard let connectionString = try secret("connectionString") else {
                throw KeygateError(.invalidConnector, "the DPS connector \(connector.name) has no connection string")
            }
            service = .dps(
                try DPSServiceClient(
                    connectionString: connectionString, http: http,
                    pacer: CallPacer(
                        perMinute: connector.settings.maxCallsPerMinute
                            ?? DPSServiceClient.publishedOperationsPerMinute, shares: ClusterNodes.live)),
                hub: try secret("hubConnectionString").map {
                    try IoTHubRegistryClient(
                        connectionString: $0, http: http,
                        pacer: CallPacer(
                            perMinute: connector.settings.hubCallsPerMinute
                                ?? IoTHubRegistryClient.publishedOperationsPerMinute, shares: ClusterNodes.live))
                })
        case .iotCentral:
            var tokens: AADTokenProvider?
            if let endpoint = connector.settings.tokenEndpoint, let clientID = connector.settings.clientID,
                let clientSecret = try secret("clientSecret")
            {
                tokens = AADTokenProvider(
                    tokenEndpoint: endpoint, clientID: clientID, clientSecret: clientSecret,
                    scope: IoTCentralClient.aadScope, http: http)
            }
            service = .central(
                try IoTCentralClient(
                    appURL: connector.settings.endpoint, apiToken: try secret("apiToken"), tokens: tokens, http: http,
                    pacer: CallPacer(
                        perMinute: connector.settings.maxCallsPerMinute ?? IoTCentralClient.publishedCallsPerMinute,
                        shares: ClusterNodes.live)))
        }
    }

    /// The calls a minute this node may make to the connector's service: its share of the allowance.
    var callsPerMinuteHere: Double {
        let allowance =
            connector.settings.maxCallsPerMinute
            ?? (connector.kind == .dps
                ? DPSServiceClient.publishedOperationsPerMinute : IoTCentralClient.publishedCallsPerMinute)
        return Double(allowance) / Double(ClusterNodes.live())
    }

    /// Whether `item` can travel in a bulk operation with others of its connector: a DPS enrollment
    /// (create or replace with the certificates Keygate issued), unless it was resumed from a node that
    /// died (it is looked up first, alone).
    func isBulkEnrollment(_ item: OutboxItem) -> Bool {
        guard case .dps = service, item.action == .enroll, item.certificate != nil, !item.resumed else {
            return false
        }
        return true
    }

    /// Writes up to ``DPSServiceClient/bulkLimit`` DPS enrollments in one call; answers the refusal
    /// of each item DPS refused, by item ID (the others are delivered).
    func deliverBulk(_ items: [OutboxItem]) async throws -> [Int64: KeygateError] {
        guard case .dps(let dps, _) = service else { return [:] }
        let refusals = try await dps.bulkPut(
            items.map {
                .init(
                    registrationID: $0.deviceID, primaryCertificate: $0.certificate ?? "",
                    secondaryCertificate: $0.previousCertificate, enabled: true)
            })
        var byItem: [Int64: KeygateError] = [:]
        for item in items { if let refusal = refusals[item.deviceID] { byItem[item.id] = refusal } }
        return byItem
    }

    /// Whether Azure already holds what `item` asks for (looked up for an item resumed from a node that
    /// died mid-delivery, so that its change is not written twice): a DPS enrollment, enabled, with the
    /// item's certificates. Other changes are written again (they are idempotent and rare).
    func alreadyDelivered(_ item: OutboxItem) async throws -> Bool {
        guard case .dps(let dps, _) = service, item.action == .enroll, let certificate = item.certificate,
            let enrollment = try await dps.enrollment(item.deviceID)
        else { return false }
        func thumbprint(_ pem: String?) -> String? {
            pem.flatMap { try? Certificate(pemEncoded: $0).thumbprints.sha256 }
        }
        let attestation = enrollment["attestation"] as? [String: Any]
        let certificates = (attestation?["x509"] as? [String: Any])?["clientCertificates"] as? [String: Any]
        func held(_ slot: String) -> String? {
            ((certificates?[slot] as? [String: Any])?["info"] as? [String: Any])?["sha256Thumbprint"] as? String
        }
        return enrollment["provisioningStatus"] as? String == "enabled"
            && held("primary")?.uppercased() == thumbprint(certificate)
            && held("secondary")?.uppercased() == thumbprint(item.previousCertificate)
    }

    /// Makes the change in Azure; safe to repeat. Answers the ID scope when it learned it.
    public func deliver(_ item: OutboxItem) async throws -> String? {
        switch (service, item.action) {
        case (.dps(let dps, _), .enroll):
            guard let certificate = item.certificate else { throw missingCertificate(item) }
            try await dps.put(
                .init(
                    registrationID: item.deviceID, primaryCertificate: certificate,
                    secondaryCertificate: item.previousCertificate, enabled: true))
            return nil
        case (.dps(let dps, let hub), .disable), (.dps(let dps, let hub), .enable):
            let enabled = item.action == .enable
            // The enrollment is written whole, with the certificates Keygate issued (DPS's GET does not
            // return them); a device that never had one has no enrollment to change.
            if let certificate = item.certificate {
                try await dps.setEnabled(
                    .init(
                        registrationID: item.deviceID, primaryCertificate: certificate,
                        secondaryCertificate: item.previousCertificate, enabled: enabled))
            }
            try await hub?.setStatus(item.deviceID, enabled: enabled, reason: enabled ? nil : "quarantined by Keygate")
            return nil
        case (.dps(let dps, let hub), .delete):
            try await dps.delete(item.deviceID)
            try await hub?.delete(item.deviceID)
            return nil
        case (.central(let central), .enroll):
            guard let certificate = item.certificate else { throw missingCertificate(item) }
            try await central.putDevice(
                item.deviceID, displayName: item.deviceID, enabled: true, certificate: certificate,
                secondaryCertificate: item.previousCertificate)
            return connector.settings.idScope == nil ? try await central.idScope(deviceID: item.deviceID) : nil
        case (.central(let central), .disable), (.central(let central), .enable):
            try await central.setEnabled(item.deviceID, item.action == .enable)
            return nil
        case (.central(let central), .delete):
            try await central.deleteDevice(item.deviceID)
            return nil
        }
    }

    /// A harmless authenticated call; says what it found.
    public func test() async throws -> String {
        switch service {
        case .dps(let dps, let hub):
            let count = try await dps.probe()
            var found = "DPS \(dps.credentials.hostName) answered: \(count) enrollment(s) on the first page"
            if let hub {
                _ = try await hub.device("keygate-connector-test")
                found += "; IoT Hub \(hub.credentials.hostName) answered"
            }
            return found
        case .central(let central):
            try await central.probe()
            return "IoT Central \(connector.settings.endpoint) answered"
        }
    }

    private func missingCertificate(_ item: OutboxItem) -> KeygateError {
        KeygateError(.internalError, "outbox item \(item.id) has no certificate to enrol")
    }
}
