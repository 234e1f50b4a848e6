public import Foundation
import Hummingbird
public import KeygateDomain
import KeygatePKI
import KeygateStore

/// `/admin/v1/connectors` and `/admin/v1/outbox`.
struct AdminConnectorAPI {
    let onboarding: OnboardingService
    var store: any ServerStore { onboarding.store }

    func register(on router: Router<KeygateRequestContext>) {
        let group = router.group("admin/v1").add(middleware: AdminAuthMiddleware(store: store))
        group.post("connectors") { request, context in try await add(request, context) }
        group.get("connectors") { _, _ in
            try jsonResponse(["connectors": try await store.connectors().map(ConnectorBody.init)])
        }
        group.get("connectors/:name") { _, context in
            try jsonResponse(ConnectorBody(try await require(try context.parameters.require("name"))))
        }
        group.post("connectors/:name/test") { _, context in
            let connector = try await require(try context.parameters.require("name"))
            let found = try await ConnectorClient(connector, secrets: onboarding.secrets).test()
            return try jsonResponse(["connector": connector.name, "result": found])
        }
        group.delete("connectors/:name") { _, context in
            let name = try context.parameters.require("name")
            try await store.removeConnector(
                name: name, audit: .init(actor: actor(context), action: "connector.removed", subject: name))
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
            let items = try await store.outboxItems(
                state: state, deviceID: query.get("device"), limit: try query.get("limit").map(parseLimit) ?? 100)
            let counts = try await store.outboxCounts()
            return try jsonResponse(
                OutboxListBody(
                    items: items.map(OutboxItemBody.init),
                    counts: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })))
        }
        group.post("outbox/:id/retry") { _, context in
            guard let id = Int64(try context.parameters.require("id")) else {
                throw KeygateError(.malformedInput, "an outbox item ID is a number")
            }
            let item = try await store.retryOutboxItem(
                id: id, audit: .init(actor: actor(context), action: "outbox.retried", subject: "\(id)"))
            return try jsonResponse(OutboxItemBody(item))
        }
    }

    private func actor(_ context: KeygateRequestContext) -> String { "admin:\(context.adminName ?? "unknown")" }

    private func require(_ name: String) async throws -> Connector {
        guard let connector = try await store.connector(named: name) else {
            throw KeygateError(.connectorNotFound, "no connector \(name)")
        }
        return connector
    }

    private func add(_ request: Request, _ context: KeygateRequestContext) async throws -> Response {
        let body = try await request.keygateJSON(ConnectorRequest.self, limit: 64 * 1024)
        try Connector.validate(name: body.name)
        guard let kind = Connector.Kind(rawValue: body.type) else {
            throw KeygateError(.invalidConnector, "type is dps or iot-central")
        }
        guard let secrets = onboarding.secrets else {
            throw KeygateError(
                .passphraseMissing, "connector secrets are sealed with the CA passphrase; serve needs it")
        }
        var sealed: [String: String] = [:]
        let settings: Connector.Settings
        let global = body.globalEndpoint ?? Connector.azureGlobalEndpoint
        switch kind {
        case .dps:
            guard let connectionString = body.connectionString, let idScope = body.idScope else {
                throw KeygateError(.invalidConnector, "a dps connector needs connectionString and idScope")
            }
            let host = try Self.hostName(connectionString, what: "connectionString")
            sealed["connectionString"] = try secrets.seal(connectionString)
            var hubHost: String?
            if let hub = body.hubConnectionString {
                hubHost = try Self.hostName(hub, what: "hubConnectionString")
                sealed["hubConnectionString"] = try secrets.seal(hub)
            }
            settings = .init(
                endpoint: host, idScope: idScope, globalEndpoint: global, caCertificate: body.caCertificate,
                hubHost: hubHost)
        case .iotCentral:
            guard let appURL = body.appUrl, appURL.hasPrefix("https://") else {
                throw KeygateError(.invalidConnector, "an iot-central connector needs appUrl (https://...)")
            }
            if let token = body.apiToken {
                sealed["apiToken"] = try secrets.seal(token)
            } else if let secret = body.clientSecret, body.tokenEndpoint != nil, body.clientId != nil {
                sealed["clientSecret"] = try secrets.seal(secret)
            } else {
                throw KeygateError(
                    .invalidConnector,
                    "an iot-central connector needs apiToken, or tokenEndpoint + clientId + clientSecret")
            }
            settings = .init(
                endpoint: appURL, idScope: body.idScope, globalEndpoint: global, caCertificate: body.caCertificate,
                tokenEndpoint: body.tokenEndpoint, clientID: body.clientId)
        }
        if let file = body.caCertificate, !FileManager.default.isReadableFile(atPath: file) {
            throw KeygateError(.invalidConnector, "caCertificate \(file) cannot be read by the server")
        }
        let connector = Connector(name: body.name, kind: kind, settings: settings, sealedSecrets: sealed)
        try await store.addConnector(
            connector,
            audit: .init(
                actor: actor(context), action: "connector.added", subject: body.name, details: ["type": kind.rawValue]))
        return try jsonResponse(ConnectorBody(connector), status: .created)
    }

    static func hostName(_ connectionString: String, what: String) throws -> String {
        let fields = Dictionary(
            connectionString.split(separator: ";").compactMap { part -> (String, String)? in
                let pair = part.split(separator: "=", maxSplits: 1)
                return pair.count == 2 ? (String(pair[0]), String(pair[1])) : nil
            }, uniquingKeysWith: { $1 })
        guard let host = fields["HostName"], fields["SharedAccessKeyName"] != nil,
            let key = fields["SharedAccessKey"], Data(base64Encoded: key) != nil
        else {
            throw KeygateError(
                .invalidConnector, "\(what) must be HostName=…;SharedAccessKeyName=…;SharedAccessKey=<base64>")
        }
        return host
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
