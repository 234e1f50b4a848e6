import Foundation
import KeygateHTTP
import KeygatePKI
public import KeygateStore
public import KeygateServer
import Logging

/// A data folder made by `KeygateInitializer` and a loaded server, for tests that drive the
/// HTTP routes or the services directly.
public struct TestKeygate: Sendable {
    public let folder: TemporaryDirectory
    public let directory: DataDirectory
    public let adminToken: String
    public let passphrase: String
    public let server: KeygateServer

    /// The database the deployment uses when made on PostgreSQL (kept alive with the nodes).
    public var database: TestDatabase? = nil

    public static func make(
        database: TestDatabase? = nil, _ configure: (inout KeygateInitializer.Options) -> Void = { _ in }
    ) async throws -> TestKeygate {
        let folder = try TemporaryDirectory("keygate")
        var options = KeygateInitializer.Options()
        options.passphrase = "test-passphrase"
        options.kdfIterations = 1000
        options.httpsPort = 0
        options.httpPort = 0
        // Tests run many devices from one address; the rate-limit test sets its own limit.
        options.deviceRequestsPerSecond = 0
        options.database = database?.backend == .postgres ? database?.text : nil
        configure(&options)
        let directory = DataDirectory(path: folder.file("data"))
        let result = try await KeygateInitializer(directory: directory, options: options).run()
        var logger = Logger(label: "keygate-test")
        logger.logLevel = .critical
        let server = try await KeygateServer.load(directory: directory, passphrase: options.passphrase, logger: logger)
        return TestKeygate(
            folder: folder, directory: directory, adminToken: result.adminToken, passphrase: options.passphrase!,
            server: server, database: database)
    }

    /// Another node of this deployment (PostgreSQL only): a data folder made by `node join`, loaded.
    public func join() async throws -> TestKeygate {
        let folder = try TemporaryDirectory("keygate-node")
        let directory = DataDirectory(path: folder.file("data"))
        var options = Deployment.NodeOptions()
        options.httpsPort = 0
        options.httpPort = 0
        try Deployment.joinNode(from: self.directory, to: directory, options: options, environment: [:])
        var logger = Logger(label: "keygate-test")
        logger.logLevel = .critical
        let server = try await KeygateServer.load(directory: directory, passphrase: passphrase, logger: logger)
        return TestKeygate(
            folder: folder, directory: directory, adminToken: adminToken, passphrase: passphrase, server: server,
            database: database)
    }

    /// Files of the CA as PEM: root, issuing, chain.
    public var rootPath: String { directory.path(server.configuration.root.certificate) }
    public var issuingPath: String { directory.path(server.configuration.issuing.certificate) }
    public var chainPath: String { directory.path(DataDirectory.chainFile) }

    /// The server's store, for setting up and checking state directly.
    public var store: any ServerStore { server.store }
    /// Seals secrets (group keys, connector credentials) the way the server does.
    public var secrets: SecretBox { SecretBox(passphrase: passphrase) }
}

extension TestKeygate {
    /// Runs the server in this process on free ports until the returned handle is stopped.
    public func start() async throws -> RunningServer {
        RunningServer(running: try await BackgroundServer.start(server.run))
    }
}

/// A server started by ``TestKeygate/start()``.
public struct RunningServer: Sendable {
    let running: BackgroundServer<KeygateServer.BoundPorts>
    public var ports: KeygateServer.BoundPorts { running.ready }

    public var httpsURL: String { "https://127.0.0.1:\(ports.https)" }
    public var httpURL: String { "http://127.0.0.1:\(ports.http)" }

    public func stop() async { await running.stop() }
}
