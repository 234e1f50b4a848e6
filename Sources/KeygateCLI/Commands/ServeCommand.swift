import ArgumentParser
import Foundation
import KeygatePKI
import KeygateServer
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the server: HTTPS admin/device API and dashboard, plain-HTTP CRL, OCSP and CA chain.",
        discussion: """
            The operator dashboard is at https://HOST:PORT/ui/ on the HTTPS listener: sign in with an admin \
            token (docs/dashboard.md). Stops cleanly on SIGTERM or SIGINT.
            """)

    @Option(name: .long, help: "The data folder made by `keygate init`.")
    var dataDir: String

    @Option(name: .long, help: "File holding the CA key passphrase (else KEYGATE_PASSPHRASE, else DIR/passphrase).")
    var passphraseFile: String?

    @Option(name: .long, help: "Override the HTTPS port from keygate.json (0: any free port).")
    var httpsPort: Int?

    @Option(name: .long, help: "Override the plain-HTTP port from keygate.json (0: any free port).")
    var httpPort: Int?

    @Option(
        name: .long,
        help: "Serve /metrics on this HOST:PORT of its own (plain HTTP) instead of the two main listeners; overrides metricsListen in keygate.json.")
    var metricsListen: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        var logger = Logger(label: "keygate")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let directory = DataDirectory(path: dataDir)
        let passphrase = try PassphraseSource.resolve(file: passphraseFile, dataDirectory: directory)
        var server = try await runReportingErrors {
            try await KeygateServer.load(directory: directory, passphrase: passphrase, logger: logger)
        }
        if let httpsPort { server = server.withPorts(https: httpsPort, http: nil) }
        if let httpPort { server = server.withPorts(https: nil, http: httpPort) }
        if let metricsListen { server = server.with { $0.metricsListen = metricsListen } }
        let configuration = server.configuration
        do {
            try await server.run { ports in
                let line =
                    "keygate serving: https://\(configuration.https.host):\(ports.https) (admin API), http://\(configuration.http.host):\(ports.http)/pki (CRL, OCSP)"
                    + (ports.metrics.map { ", metrics on port \($0)" } ?? "")
                    + "\ndashboard: https://\(configuration.https.host):\(ports.https)/ui/ (sign in with an admin token)\n"
                FileHandle.standardOutput.write(Data(line.utf8))
            }
        } catch {
            let text = "\(error)"
            let message =
                text.contains("Address already in use")
                ? "listenFailed: port \(configuration.https.port) or \(configuration.http.port) on \(configuration.https.host) is already in use (another keygate serve?)"
                : "serveFailed: \(text)"
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            throw ExitCode(1)
        }

    }
}
