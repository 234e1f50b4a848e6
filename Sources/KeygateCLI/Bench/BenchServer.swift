import Foundation
import KeygateHTTP
import KeygatePKI
import KeygateServer
import Logging

/// A Keygate node of a benchmark's own: a temporary data folder (SQLite, or `database` on PostgreSQL),
/// initialized with the benchmark's options, loaded and serving on free ports. `stop()` ends it and
/// removes the folder.
struct BenchServer {
    let folder: String
    let directory: DataDirectory
    let initialized: KeygateInitializer.Result
    let server: KeygateServer
    let running: BackgroundServer<KeygateServer.BoundPorts>
    static let passphrase = "benchmark-passphrase"

    /// The ports the node listens on.
    var ports: KeygateServer.BoundPorts { running.ready }

    static func start(
        _ name: String, database: String? = nil, configure: (inout KeygateInitializer.Options) -> Void = { _ in }
    ) async throws -> BenchServer {
        let folder = NSTemporaryDirectory() + "keygate-bench-\(name)-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        do {
            var options = KeygateInitializer.Options()
            options.httpsPort = 0
            options.httpPort = 0
            options.passphrase = passphrase
            options.database = database
            configure(&options)
            let directory = DataDirectory(path: folder + "/data")
            let initialized = try await KeygateInitializer(directory: directory, options: options).run()
            var logger = Logger(label: "keygate-bench")
            logger.logLevel = .warning
            let server = try await KeygateServer.load(directory: directory, passphrase: passphrase, logger: logger)
            let running = try await BackgroundServer.start(server.run)
            return BenchServer(
                folder: folder, directory: directory, initialized: initialized, server: server, running: running)
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    /// Stops the node and removes its folder.
    func stop() {
        running.cancel()
        try? FileManager.default.removeItem(atPath: folder)
    }
}
