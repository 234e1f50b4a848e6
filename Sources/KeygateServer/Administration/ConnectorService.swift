import Foundation
public import KeygateDomain
import KeygatePKI
import KeygateStore

/// Connectors to DPS and IoT Central, and the outbox that carries changes to them: add, test,
/// remove, list; outbox items by state and a retry for dead letters. Secrets are sealed with the
/// CA passphrase before they reach the store and never leave it again.
public struct ConnectorService: Sendable {
    let store: any ServerStore
    let secrets: SecretBox?

    /// All connectors, as stored (secrets sealed).
    public func connectors() async throws -> [Connector] { try await store.connectors() }

    /// The connector named `name`; throws `connectorNotFound` when there is none.
    public func connector(named name: String) async throws -> Connector {
        guard let connector = try await store.connector(named: name) else {
            throw KeygateError(.connectorNotFound, "no connector \(name)")
        }
        return connector
    }

    /// Makes a harmless authenticated call with the connector's credentials; says what it found.
    public func test(named name: String) async throws -> String {
        try await ConnectorClient(try await connector(named: name), secrets: secrets).test()
    }

    /// Removes a connector, audited as `connector.removed` in the same transaction. Throws `connectorInUse`
    /// while a group names it and `connectorNotFound` when there is none.
    public func remove(named name: String, actor: String) async throws {
        try await store.removeConnector(
            name: name, audit: .init(actor: actor, action: "connector.removed", subject: name))
    }

    /// Adds a connector: checks its settings, seals its secrets.
    public func add(_ body: ConnectorRequest, actor: String) async throws -> Connector {
        try Connector.validate(name: body.name)
        guard let kind = Connector.Kind(rawValue: body.type) else {
            throw KeygateError(.invalidConnector, "type is dps or iot-central")
        }
        guard let secrets else {
            throw KeygateError(
                .passphraseMissing, "connector secrets are sealed with the CA passphrase; serve needs it")
        }
        var sealed: [String: String] = [:]
        var settings: Connector.Settings
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
            try Self.checkPace(body.hubCallsPerMinute, "hubCallsPerMinute")
            settings = .init(
                endpoint: host, idScope: idScope, globalEndpoint: global, caCertificate: body.caCertificate,
                hubHost: hubHost, hubCallsPerMinute: body.hubCallsPerMinute)
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
        try Self.checkPace(body.maxCallsPerMinute, "maxCallsPerMinute")
        settings.maxCallsPerMinute = body.maxCallsPerMinute
        if let file = body.caCertificate, !FileManager.default.isReadableFile(atPath: file) {
            throw KeygateError(.invalidConnector, "caCertificate \(file) cannot be read by the server")
        }
        let connector = Connector(name: body.name, kind: kind, settings: settings, sealedSecrets: sealed)
        try await store.addConnector(
            connector,
            audit: .init(actor: actor, action: "connector.added", subject: body.name, details: ["type": kind.rawValue]))
        return connector
    }


    /// Changes a connector's pacing, audited as `connector.updated` with the old and new values. A
    /// field left out stays as it is; 0 returns it to Azure's published limit. Every node uses the
    /// change from its next outbox batch on.
    public func update(named name: String, _ body: ConnectorUpdateRequest, actor: String) async throws -> Connector {
        var connector = try await connector(named: name)
        try Self.checkPace(body.maxCallsPerMinute.flatMap { $0 == 0 ? nil : $0 }, "maxCallsPerMinute")
        try Self.checkPace(body.hubCallsPerMinute.flatMap { $0 == 0 ? nil : $0 }, "hubCallsPerMinute")
        if body.hubCallsPerMinute != nil, connector.kind != .dps || connector.settings.hubHost == nil {
            throw KeygateError(.invalidConnector, "hubCallsPerMinute applies to a dps connector with a hub")
        }
        guard body.maxCallsPerMinute != nil || body.hubCallsPerMinute != nil else {
            throw KeygateError(.invalidConnector, "nothing to change: give maxCallsPerMinute or hubCallsPerMinute")
        }
        var details: [String: String] = [:]
        func describe(_ value: Int?) -> String { value.map(String.init) ?? "default" }
        if let value = body.maxCallsPerMinute {
            details["maxCallsPerMinute"] =
                "\(describe(connector.settings.maxCallsPerMinute)) -> \(describe(value == 0 ? nil : value))"
            connector.settings.maxCallsPerMinute = value == 0 ? nil : value
        }
        if let value = body.hubCallsPerMinute {
            details["hubCallsPerMinute"] =
                "\(describe(connector.settings.hubCallsPerMinute)) -> \(describe(value == 0 ? nil : value))"
            connector.settings.hubCallsPerMinute = value == 0 ? nil : value
        }
        try await store.updateConnectorSettings(
            name: name, settings: connector.settings,
            audit: .init(actor: actor, action: "connector.updated", subject: name, details: details))
        return connector
    }

    /// A pace is 1 to 100,000 calls a minute.
    static func checkPace(_ value: Int?, _ field: String) throws {
        if let value, !(1...100_000).contains(value) {
            throw KeygateError(.invalidConnector, "\(field) must be 1 to 100000")
        }
    }

    // MARK: Outbox

    /// Outbox items, newest first, by state and device; and the count in each state.
    public func outbox(state: OutboxItem.State?, deviceID: String?, limit: Int) async throws
        -> (items: [OutboxItem], counts: [OutboxItem.State: Int])
    {
        (try await store.outboxItems(state: state, deviceID: deviceID, limit: limit), try await store.outboxCounts())
    }

    /// Puts a dead letter back in the queue, after its cause was fixed.
    public func retry(outboxItem id: Int64, actor: String) async throws -> OutboxItem {
        try await store.retryOutboxItem(
            id: id, audit: .init(actor: actor, action: "outbox.retried", subject: "\(id)"))
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
