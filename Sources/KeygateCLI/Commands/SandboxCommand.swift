import ArgumentParser
import Foundation
import KeygateSandbox
import Logging

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a local stand-in for Azure: so far AAD client credentials and Key Vault keys.",
        discussion: """
            Makes its own CA and TLS certificate in the data folder on first start, keeps its state there,
            prints the connection facts as JSON and writes them to DATA-DIR/connection.json.
            DPS, IoT Hub and IoT Central follow.
            """)

    @Option(name: .long, help: "The sandbox's data folder (created if missing).") var dataDir: String
    @Option(name: .long, parsing: .singleValue, help: "Another host name or IP for the TLS certificate (repeatable).")
    var host: [String] = []
    @Option(name: .long, help: "Address to listen on.") var listen: String = "127.0.0.1"
    @Option(name: .long, help: "HTTPS port (0: any free port).") var httpsPort: Int = 8443
    @Option(name: .long, help: "Log level.") var logLevel: String = "info"

    func run() async throws {
        var logger = Logger(label: "keygate-sandbox")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var options = SandboxServer.Options(dataDirectory: dataDir)
        options.hosts = host
        options.listenHost = listen
        options.httpsPort = httpsPort
        try await SandboxServer(options: options, logger: logger).run { connection in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            if let data = try? encoder.encode(connection) {
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            }
        }
    }
}
