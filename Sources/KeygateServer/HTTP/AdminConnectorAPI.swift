public import Foundation
import Hummingbird
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

public struct ConnectorRequest: Codable, Sendable {
    public var name: String
    public var type: String
    public var connectionString: String?
    public var idScope: String?
    public var globalEndpoint: String?
    public var caCertificate: String?
    public var hubConnectionString: String?
    public var appUrl: String?
    public var apiToken: String?
    public var tokenEndpoint: String?
    public var clientId: String?
    public var clientSecret: String?
    /// dps with a hub: IoT Hub registry calls per minute (1 to 100,000; default 100, one S1 unit).
    public var hubCallsPerMinute: Int?

    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}

/// A connector as the API shows it: never its secrets, only which ones it holds.
public struct ConnectorBody: Codable, Sendable {
    public var name: String
    public var type: String
    public var endpoint: String
    public var idScope: String?
    public var globalEndpoint: String
    public var caCertificate: String?
    public var hubHost: String?
    /// The pace of IoT Hub registry calls; `nil`: Azure's published 100 a minute.
    public var hubCallsPerMinute: Int?
    public var secrets: [String]
    public var createdAt: Date

    public init(_ connector: Connector) {
        name = connector.name
        type = connector.kind.rawValue
        endpoint = connector.settings.endpoint
        idScope = connector.settings.idScope
        globalEndpoint = connector.settings.globalEndpoint
        caCertificate = connector.settings.caCertificate
        hubHost = connector.settings.hubHost
        hubCallsPerMinute = connector.settings.hubCallsPerMinute
        secrets = connector.sealedSecrets.keys.sorted()
        createdAt = connector.createdAt
    }
}

public struct OutboxItemBody: Codable, Sendable {
    public var id: Int64
    public var connector: String
    public var deviceId: String
    public var action: String
    public var state: String
    public var attempts: Int
    public var nextAttemptAt: Date
    public var lastError: String?
    public var createdAt: Date
    public var updatedAt: Date

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

public struct OutboxListBody: Codable, Sendable {
    public var items: [OutboxItemBody]
    public var counts: [String: Int]
}
