import ArgumentParser
import Foundation
import KeygateServer
import NIOHTTP1

struct ConnectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connector", abstract: "Connect Keygate to Azure: a DPS instance or an IoT Central app.",
        discussion: """
            A group names its connector (`keygate group create NAME --connector C`); enrolled devices then get
            a DPS individual enrollment (or an IoT Central device with X.509 attestation) through the outbox.
            Secrets are sealed with the CA passphrase and never printed.
            """,
        subcommands: [Add.self, Update.self, List.self, Show.self, Test.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a connector.",
            discussion: """
                dps:          --type dps --connection-string "HostName=...;SharedAccessKeyName=...;SharedAccessKey=..."
                              --id-scope S [--global-endpoint HOST] [--hub-connection-string CS] [--azure-ca-cert FILE]
                iot-central:  --type iot-central --app-url URL (--api-token T | --token-endpoint URL --client-id ID
                              --client-secret-file FILE) [--id-scope S] [--global-endpoint HOST] [--azure-ca-cert FILE]
                Secrets may also come from files: --connection-string @FILE, --api-token @FILE.
                """)
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The connector's name.") var name: String
        @Option(help: "dps or iot-central.") var type: String
        @Option(help: "dps: the service connection string (or @FILE).") var connectionString: String?
        @Option(help: "The DPS ID scope devices register under.") var idScope: String?
        @Option(help: "Where devices register (default global.azure-devices-provisioning.net).") var globalEndpoint:
            String?
        @Option(
            help: "dps: the IoT Hub registry connection string (or @FILE), to disable hub identities on quarantine.")
        var hubConnectionString: String?
        @Option(help: "iot-central: the app URL, https://APP.azureiotcentral.com.") var appUrl: String?
        @Option(help: "iot-central: an API token (or @FILE).") var apiToken: String?
        @Option(help: "iot-central with AAD: the token endpoint.") var tokenEndpoint: String?
        @Option(help: "iot-central with AAD: the client ID.") var clientId: String?
        @Option(help: "iot-central with AAD: a file holding the client secret.") var clientSecretFile: String?
        @Option(
            help: "A PEM CA to trust for this connector's Azure endpoints (the sandbox's); default: the system's roots."
        )
        var azureCaCert: String?
        @Option(
            help: """
                dps with --hub-connection-string: IoT Hub registry calls per minute (default 100, Azure's \
                throttle for one S1 unit; raise it with more units).
                """)
        var hubCallsPerMinute: Int?
        @Option(
            help: """
                Calls per minute to DPS's service API or the IoT Central app, for the whole deployment (nodes \
                split it); default Azure's published limit: 1000 for DPS, 1200 for IoT Central.
                """)
        var maxCallsPerMinute: Int?

        func validate() throws {
            if let hubCallsPerMinute, !(1...100_000).contains(hubCallsPerMinute) {
                throw ValidationError("--hub-calls-per-minute must be 1 to 100000")
            }
            if let maxCallsPerMinute, !(1...100_000).contains(maxCallsPerMinute) {
                throw ValidationError("--max-calls-per-minute must be 1 to 100000")
            }
        }

        func run() async throws {
            var request = ConnectorRequest(name: name, type: type)
            request.connectionString = try connectionString.map(Self.secret)
            request.idScope = idScope
            request.globalEndpoint = globalEndpoint
            request.hubConnectionString = try hubConnectionString.map(Self.secret)
            request.appUrl = appUrl
            request.apiToken = try apiToken.map(Self.secret)
            request.tokenEndpoint = tokenEndpoint
            request.clientId = clientId
            request.clientSecret = try clientSecretFile.map { try Self.secret("@" + $0) }
            request.hubCallsPerMinute = hubCallsPerMinute
            request.maxCallsPerMinute = maxCallsPerMinute
            request.caCertificate = azureCaCert.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
            let added = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.post("/admin/v1/connectors", body: request, as: ConnectorBody.self)
                }
            }
            printConnector(added)
        }

        /// A value, or the first line of a file for `@FILE`.
        static func secret(_ value: String) throws -> String {
            guard value.hasPrefix("@") else { return value }
            let file = String(value.dropFirst())
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change how fast a connector calls Azure.",
            discussion: """
                Every node uses the new pace from its next outbox batch on; the change is audited
                (connector.updated). `default` returns a pace to Azure's published limit (DPS 1000 service
                operations a minute, IoT Central 1200 calls a minute, IoT Hub registry 100 a minute per S1 unit).
                """)
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The connector's name.") var name: String
        @Option(help: "Calls per minute to DPS or IoT Central (1 to 100000, or default).") var maxCallsPerMinute: String?
        @Option(help: "dps with a hub: IoT Hub registry calls per minute (1 to 100000, or default).")
        var hubCallsPerMinute: String?

        static func pace(_ text: String?, _ flag: String) throws -> Int? {
            guard let text else { return nil }
            if text == "default" { return 0 }
            guard let value = Int(text), (1...100_000).contains(value) else {
                throw ValidationError("\(flag) is 1 to 100000, or default")
            }
            return value
        }

        func validate() throws {
            guard maxCallsPerMinute != nil || hubCallsPerMinute != nil else {
                throw ValidationError("give --max-calls-per-minute or --hub-calls-per-minute")
            }
            _ = try Self.pace(maxCallsPerMinute, "--max-calls-per-minute")
            _ = try Self.pace(hubCallsPerMinute, "--hub-calls-per-minute")
        }

        func run() async throws {
            let request = ConnectorUpdateRequest(
                maxCallsPerMinute: try Self.pace(maxCallsPerMinute, "--max-calls-per-minute"),
                hubCallsPerMinute: try Self.pace(hubCallsPerMinute, "--hub-calls-per-minute"))
            let updated = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.send(
                        method: .PATCH, path: "/admin/v1/connectors/\(name)",
                        body: Array(try JSONEncoder().encode(request)), as: ConnectorBody.self)
                }
            }
            printConnector(updated)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List connectors.")
        @OptionGroup var connection: AdminConnectionOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            struct Body: Codable { var connectors: [ConnectorBody] }
            let body = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/connectors", as: Body.self)
                }
            }
            if json { return try printJSON(body) }
            printTable(
                header: ["NAME", "TYPE", "ENDPOINT", "ID SCOPE"],
                rows: body.connectors.map { [$0.name, $0.type, $0.endpoint, $0.idScope ?? "-"] })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a connector (never its secrets).")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The connector's name.") var name: String
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let body = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/connectors/\(name)", as: ConnectorBody.self)
                }
            }
            if json { return try printJSON(body) }
            printConnector(body)
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a harmless authenticated call with the connector and say what it found.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The connector's name.") var name: String

        func run() async throws {
            struct Body: Codable {
                var connector: String
                var result: String
            }
            let body = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.send(
                        method: .POST, path: "/admin/v1/connectors/\(name)/test", body: nil, as: Body.self)
                }
            }
            print("\(body.connector): \(body.result)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a connector no group uses.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The connector's name.") var name: String

        func run() async throws {
            try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.delete("/admin/v1/connectors/\(name)")
                }
            }
            print("Removed connector \(name)")
        }
    }
}

func printConnector(_ connector: ConnectorBody) {
    print("Connector \(connector.name) (\(connector.type))")
    print("  endpoint         \(connector.endpoint)")
    print("  ID scope         \(connector.idScope ?? "(learned from the first device)")")
    print("  global endpoint  \(connector.globalEndpoint)")
    print(
        "  pace             at most \(connector.callsPerMinute) calls a minute to \(connector.type == "dps" ? "DPS" : "IoT Central")"
            + (connector.maxCallsPerMinute == nil ? " (Azure's published limit)" : ""))
    if let hub = connector.hubHost {
        print("  IoT Hub          \(hub) (at most \(connector.hubCallsPerMinute ?? 100) registry calls a minute)")
    }
    if let ca = connector.caCertificate { print("  trusts           \(ca)") }
    print("  secrets          \(connector.secrets.joined(separator: ", ")) (sealed)")
}

struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox", abstract: "See and retry the changes Keygate is making in Azure.",
        subcommands: [List.self, Retry.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List outbox items, newest first.")
        @OptionGroup var connection: AdminConnectionOptions
        @Option(help: "pending, delivered or deadLetter.") var state: String?
        @Option(help: "Only this device's items.") var device: String?
        @Option(help: "How many.") var limit: Int = 100
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let state { query.append("state=\(state)") }
            if let device { query.append("device=\(device)") }
            let body = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/outbox?" + query.joined(separator: "&"), as: OutboxListBody.self)
                }
            }
            if json { return try printJSON(body) }
            printTable(
                header: ["ID", "DEVICE", "ACTION", "CONNECTOR", "STATE", "ATTEMPTS", "LAST ERROR"],
                rows: body.items.map {
                    [
                        String($0.id), $0.deviceId, $0.action, $0.connector, $0.state, String($0.attempts),
                        String(($0.lastError ?? "-").prefix(80)),
                    ]
                })
            let counts = body.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            print("Totals: \(counts.isEmpty ? "none" : counts.joined(separator: ", "))")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a dead letter back in the queue.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The outbox item's ID.") var id: Int64

        func run() async throws {
            let item = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.send(
                        method: .POST, path: "/admin/v1/outbox/\(id)/retry", body: nil, as: OutboxItemBody.self)
                }
            }
            print("Outbox item \(item.id) (\(item.action) \(item.deviceId)) is \(item.state) again")
        }
    }
}
