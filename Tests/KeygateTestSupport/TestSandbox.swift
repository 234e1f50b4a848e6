import Foundation
public import KeygateSandbox
import Logging

/// A `keygate sandbox` running in this process on a free port, for tests.
public struct TestSandbox: Sendable {
    public let connection: SandboxServer.Connection
    let task: Task<Void, any Error>

    /// Starts a sandbox whose state lives in `folder/sandbox` (reusing it if it exists).
    /// MQTT listens on `mqttPort` (0: a free port; Microsoft's device SDKs need 8883).
    public static func start(in folder: TemporaryDirectory, mqttPort: Int? = 0) async throws -> TestSandbox {
        var options = SandboxServer.Options(dataDirectory: folder.file("sandbox"))
        options.httpsPort = 0
        options.mqttPort = mqttPort
        var logger = Logger(label: "sandbox-test")
        logger.logLevel = .critical
        let server = SandboxServer(options: options, logger: logger)
        let (stream, continuation) = AsyncStream.makeStream(of: SandboxServer.Connection.self)
        let task = Task { try await server.run { continuation.yield($0) } }
        var iterator = stream.makeAsyncIterator()
        guard let connection = await iterator.next() else { throw ServerDidNotStart(log: "sandbox") }
        return TestSandbox(connection: connection, task: task)
    }

    public func stop() async {
        task.cancel()
        _ = await task.result
    }
}
