import Foundation
import KeygateHTTP
public import KeygateSandbox
import Logging

/// A `keygate sandbox` running in this process on a free port, for tests.
public struct TestSandbox: Sendable {
    let running: BackgroundServer<SandboxServer.Connection>
    public var connection: SandboxServer.Connection { running.ready }

    /// Starts a sandbox whose state lives in `folder/sandbox` (reusing it if it exists).
    /// MQTT listens on `mqttPort` (0: a free port; Microsoft's device SDKs need 8883).
    public static func start(in folder: TemporaryDirectory, mqttPort: Int? = 0) async throws -> TestSandbox {
        var options = SandboxServer.Options(dataDirectory: folder.file("sandbox"))
        options.httpsPort = 0
        options.mqttPort = mqttPort
        var logger = Logger(label: "sandbox-test")
        logger.logLevel = .critical
        let server = SandboxServer(options: options, logger: logger)
        return TestSandbox(running: try await BackgroundServer.start(server.run))
    }

    public func stop() async { await running.stop() }
}
