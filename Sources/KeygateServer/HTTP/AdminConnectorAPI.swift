public import Foundation
import Hummingbird
import KeygateAzure
public import KeygateDomain
import KeygatePKI
import KeygateStore

/// `/admin/v1/connectors` and `/admin/v1/outbox`.
struct AdminConnectorAPI {
    let connectors: ConnectorService
    let auth: AdminAuthMiddleware

    func register(on router: Router<KeygateRequestContext>) {
        let group = router.group("admin/v1").add(middleware: auth)
        group.post("connectors") { request, context in
            let body = try await request.keygateJSON(ConnectorRequest.self, limit: 64 * 1024)
            return try jsonResponse(
                ConnectorBody(try await connectors.add(body, actor: context.actor)), status: .created)
        }
        group.get("connectors") { _, _ in
            try jsonResponse(["connectors": try await connectors.connectors().map(ConnectorBody.init)])
        }
        group.get("connectors/:name") { _, context in
            try jsonResponse(ConnectorBody(try await connectors.connector(named: try context.parameters.require("name"))))
        }
        group.patch("connectors/:name") { request, context in
            let body = try await request.keygateJSON(ConnectorUpdateRequest.self, limit: 16 * 1024)
            return try jsonResponse(
                ConnectorBody(
                    try await connectors.update(
                        named: try context.parameters.require("name"), body, actor: context.actor)))
        }
        group.post("connectors/:name/test") { _, context in
            let name = try context.parameters.require("name")
            let found = try await connectors.test(named: name)
            return try jsonResponse(["connector": name, "result": found])
        }
        group.delete("connectors/:name") { _, context in
            try await connectors.remove(named: try context.parameters.require("name"), actor: context.actor)
            return Response(status: .noContent)
        }
        group.get("outbox") { request, _ in
            let query = request.uri.queryParameters
            var state: OutboxItem.State?
            if let text = query.get("state") {
                guard let parsed = OutboxItem.State(rawValue: text) else {
                    throw KeygateError(.malformedInput, "state is pending, delivered or deadLetter")
                }
                state = parsed
            }
            let (items, counts) = try await connectors.outbox(
                state: state, deviceID: query.get("device"), limit: try query.get("limit").map(parseLimit) ?? 100)
            return try jsonResponse(
                OutboxListBody(
                    items: items.map(OutboxItemBody.init),
                    counts: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })))
        }
        group.post("outbox/:id/retry") { _, context in
            guard let id = Int64(try context.parameters.require("id")) else {
                throw KeygateError(.malformedInput, "an outbox item ID is a number")
            }
            return try jsonResponse(OutboxItemBody(try await connectors.retry(outboxItem: id, actor: context.actor)))
        }
    }
}

/// A connector to add (`POST /admin/v1/connectors`); which fields are needed depends on `type`.
public struct ConnectorRequest: Codable, Sendable {
    /// The connector name groups refer to: 1 to 64 letters, digits, `-` or `_`.
    public var name: String
    /// `dps` or `iot-central`.
    public var type: String
    /// dps: the service connection string, `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` (sealed).
    public var connectionString: String?
    /// The DPS ID scope devices register under; required for dps, optional for iot-central.
    public var idScope: String?
    /// Where devices register; `nil`: Azure's `global.azure-devices-provisioning.net`.
    public var globalEndpoint: String?
    /// A PEM file on the server to trust for this connector's TLS; `nil`: the system's roots.
    public var caCertificate: String?
    /// dps: the IoT Hub connection string, so quarantine and retirement can change hub identities (sealed).
    public var hubConnectionString: String?
    /// iot-central: the app URL (`https://…`).
    public var appUrl: String?
    /// iot-central: an API token (sealed); otherwise give `tokenEndpoint`, `clientId` and `clientSecret`.
    public var apiToken: String?
    /// iot-central with AAD: the token endpoint.
    public var tokenEndpoint: String?
    /// iot-central with AAD: the application (client) ID.
    public var clientId: String?
    /// iot-central with AAD: the client secret (sealed).
    public var clientSecret: String?
    /// dps with a hub: IoT Hub registry calls per minute (1 to 100,000; default 100, one S1 unit).
    public var hubCallsPerMinute: Int?
    /// Calls per minute to DPS's service API or the IoT Central app, for the whole deployment (1 to
    /// 100,000; default Azure's published limit: 1,000 for DPS, 1,200 for IoT Central).
    public var maxCallsPerMinute: Int?

    /// Creates a request with a name and type; set the other fields as the type needs.
    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}

/// A change to a connector's pacing (`PATCH /admin/v1/connectors/{name}`): fields left out stay as
/// they are; 0 returns a field to Azure's published limit.
public struct ConnectorUpdateRequest: Codable, Sendable {
    /// Calls per minute to DPS or IoT Central (1 to 100,000; 0: Azure's published limit).
    public var maxCallsPerMinute: Int?
    /// IoT Hub registry calls per minute, for a dps connector with a hub (1 to 100,000; 0: 100).
    public var hubCallsPerMinute: Int?

    /// Creates an empty change.
    public init(maxCallsPerMinute: Int? = nil, hubCallsPerMinute: Int? = nil) {
        self.maxCallsPerMinute = maxCallsPerMinute
        self.hubCallsPerMinute = hubCallsPerMinute
    }
}

/// A connector as the API shows it: never its secrets, only which ones it holds.
public struct ConnectorBody: Codable, Sendable {
    /// The connector name.
    public var name: String
    /// `dps` or `iot-central`.
    public var type: String
    /// dps: the service host; iot-central: the app URL.
    public var endpoint: String
    /// The DPS ID scope; `nil` for IoT Central until a device's credentials reveal it.
    public var idScope: String?
    /// Where devices register (`global.azure-devices-provisioning.net` in Azure).
    public var globalEndpoint: String
    /// The PEM file trusted for the connector's TLS; `nil`: the system's roots.
    public var caCertificate: String?
    /// The IoT Hub host when a hub connection string was given; `nil`: none.
    public var hubHost: String?
    /// The pace of IoT Hub registry calls; `nil`: Azure's published 100 a minute.
    public var hubCallsPerMinute: Int?
    /// The pace of calls to DPS or IoT Central as set; `nil`: Azure's published limit.
    public var maxCallsPerMinute: Int?
    /// The pace in force: `maxCallsPerMinute`, or Azure's published limit for the service.
    public var callsPerMinute: Int
    /// The names of the sealed secrets it holds (`connectionString`, `apiToken`, ...), sorted.
    public var secrets: [String]
    /// When the connector was added.
    public var createdAt: Date

    /// Creates the body of a stored connector, without its secrets.
    public init(_ connector: Connector) {
        name = connector.name
        type = connector.kind.rawValue
        endpoint = connector.settings.endpoint
        idScope = connector.settings.idScope
        globalEndpoint = connector.settings.globalEndpoint
        caCertificate = connector.settings.caCertificate
        hubHost = connector.settings.hubHost
        hubCallsPerMinute = connector.settings.hubCallsPerMinute
        maxCallsPerMinute = connector.settings.maxCallsPerMinute
        callsPerMinute =
            connector.settings.maxCallsPerMinute
            ?? (connector.kind == .dps
                ? DPSServiceClient.publishedOperationsPerMinute : IoTCentralClient.publishedCallsPerMinute)
        secrets = connector.sealedSecrets.keys.sorted()
        createdAt = connector.createdAt
    }
}

/// An outbox item (a change to make in Azure) as the admin API shows it.
public struct OutboxItemBody: Codable, Sendable {
    /// The item ID, increasing; used by `POST /admin/v1/outbox/{id}/retry`.
    public var id: Int64
    /// The name of the connector that delivers the change.
    public var connector: String
    /// The device the change is for.
    public var deviceId: String
    /// `enroll`, `disable`, `enable` or `delete`.
    public var action: String
    /// `pending`, `delivered` or `deadLetter`.
    public var state: String
    /// Failed deliveries so far; reset to 0 when a dead letter is retried.
    public var attempts: Int
    /// When the dispatcher may try next.
    public var nextAttemptAt: Date
    /// The last delivery error; `nil` once delivered or before a failure.
    public var lastError: String?
    /// When the item was queued.
    public var createdAt: Date
    /// When its state or attempt count last changed.
    public var updatedAt: Date

    /// Creates the body of a stored outbox item (without its certificates).
    public init(_ item: OutboxItem) {
        id = item.id
        connector = item.connector
        deviceId = item.deviceID
        action = item.action.rawValue
        state = item.state.rawValue
        attempts = item.attempts
        nextAttemptAt = item.nextAttemptAt
        lastError = item.lastError
        createdAt = item.createdAt
        updatedAt = item.updatedAt
    }
}

/// Outbox items and the count in each state.
public struct OutboxListBody: Codable, Sendable {
    /// The items, newest first.
    public var items: [OutboxItemBody]
    /// All items counted by state (`pending`, `delivered`, `deadLetter`).
    public var counts: [String: Int]
}
