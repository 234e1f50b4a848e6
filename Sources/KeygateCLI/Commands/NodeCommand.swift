import ArgumentParser
import Foundation
import KeygatePKI
import KeygateServer

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Nodes of a deployment on PostgreSQL: add one.",
        subcommands: [Join.self])

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "join",
            abstract: "Make a data folder for another node of a deployment on PostgreSQL.",
            discussion: """
                Copies from --from (a node's data folder, or a copy of it brought to this host) what every
                node shares: keygate.json, the CA certificates and key references (encrypted key files; a
                PKCS #11 token or Key Vault key is named, and must be reachable from this host), the TLS
                identity, the audit chain's key and the admin token. The database stays where it is; the
                SQLite file and the audit checkpoints a node signed are never copied. Every node is active:
                run `keygate serve --data-dir DIR` on each, behind a load balancer (docs/operations.md).
                """)

        @Option(name: .long, help: "A data folder of the deployment (on PostgreSQL).")
        var from: String

        @Option(name: .long, help: "The new node's data folder (must not exist yet).")
        var dataDir: String

        @Option(name: .long, help: "Address the new node's listeners bind to (default: as in --from).")
        var listen: String?

        @Option(name: .long, help: "The new node's HTTPS port (default: as in --from).")
        var httpsPort: Int?

        @Option(name: .long, help: "The new node's plain-HTTP port (default: as in --from).")
        var httpPort: Int?

        @Option(name: .long, help: "The new node's metrics listener, HOST:PORT (default: as in --from).")
        var metricsListen: String?

        func run() async throws {
            var options = Deployment.NodeOptions()
            options.listenHost = listen
            options.httpsPort = httpsPort
            options.httpPort = httpPort
            options.metricsListen = metricsListen
            let target = DataDirectory(path: dataDir)
            let configuration = try await runReportingErrors {
                try Deployment.joinNode(from: DataDirectory(path: from), to: target, options: options)
            }
            print("Created node data folder \(target.url.path)")
            print("  database    \(configuration.database)")
            print("  HTTPS       \(configuration.https.host):\(configuration.https.port)   HTTP \(configuration.http.host):\(configuration.http.port)")
            print("")
            print("Next: keygate serve --data-dir \(dataDir)")
        }
    }
}

struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "The deployment's database: move it from SQLite to PostgreSQL.",
        subcommands: [Copy.self])

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy",
            abstract: "Copy a single-node deployment from SQLite into an empty PostgreSQL database.",
            discussion: """
                Stop `keygate serve` first. Every table is copied as it is; then the row counts are compared
                and the audit chain is verified on PostgreSQL, and keygate.json is pointed at it. The SQLite
                file stays as it was, as a backup. Then start the node again and add others with
                `keygate node join`.
                """)

        @Option(name: .long, help: "The data folder whose SQLite database is copied.")
        var from: String

        @Option(name: .long, help: "The empty PostgreSQL database: postgres://USER@HOST:PORT/DATABASE[?sslmode=…].")
        var to: String

        @Option(name: .long, help: "File holding the PostgreSQL password (else PGPASSWORD); recorded by path.")
        var databasePasswordFile: String?

        @Option(
            name: .long,
            help: "File holding the CA key passphrase, to verify the keyed audit chain (else KEYGATE_PASSPHRASE, else DIR/passphrase).")
        var passphraseFile: String?

        func run() async throws {
            let directory = DataDirectory(path: from)
            let passphrase = try? PassphraseSource.resolve(file: passphraseFile, dataDirectory: directory)
            let bar = ProgressBarBox()
            let counts = try await runReportingErrors {
                try await Deployment.moveToPostgres(
                    directory, url: to,
                    passwordFile: databasePasswordFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                    passphrase: passphrase
                ) { done, total in bar.update(done, total) }
            }
            bar.finish()
            let total = counts.values.reduce(0, +)
            print("Copied \(total) rows to \(try DatabaseLocationText.redacted(to)):")
            for (table, count) in counts.sorted(by: { $0.key < $1.key }) where count > 0 {
                print("  \(table.padding(toLength: 14, withPad: " ", startingAt: 0)) \(count)")
            }
            print("The audit chain verifies; \(directory.path(DataDirectory.configurationFile)) now names PostgreSQL.")
        }
    }
}

/// A progress bar made on the first update, once the total is known.
final class ProgressBarBox: @unchecked Sendable {
    // Updated from the copy's one task at a time.
    private var bar: ProgressBar?
    private let lock = NSLock()

    func update(_ done: Int, _ total: Int) {
        lock.withLock {
            if bar == nil { bar = ProgressBar(total: total, label: "rows") }
            bar?.update(done)
        }
    }

    func finish() { lock.withLock { bar?.finish() } }
}

/// A database URL for printing, without its password.
enum DatabaseLocationText {
    static func redacted(_ url: String) throws -> String {
        guard var components = URLComponents(string: url) else { return url }
        if components.password != nil { components.password = "***" }
        return components.string ?? url
    }
}
