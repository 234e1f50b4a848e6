public import Foundation

/// The built `keygate` binary, run as a separate process the way a user runs it.
public struct KeygateBinary: Sendable {
    public let path: String

    /// `KEYGATE_BINARY` (for `keygate`), else `.build/debug/NAME` in the package (built by `swift build`).
    public static func locate(_ name: String = "keygate") throws -> KeygateBinary {
        let override = name == "keygate" ? ProcessInfo.processInfo.environment["KEYGATE_BINARY"] : nil
        let path = override ?? packageRoot + "/.build/debug/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ToolMissing(name: "the \(name) binary at \(path) (run `swift build` before `swift test`)")
        }
        return KeygateBinary(path: path)
    }

    @discardableResult
    public func run(_ arguments: [String], environment: [String: String]? = nil) throws -> ExternalTool.Output {
        try ExternalTool(path: path).run(arguments, environment: environment)
    }

    /// From async code: see ``ExternalTool/run(_:input:environment:timeout:)-async``.
    @discardableResult
    public func run(_ arguments: [String], environment: [String: String]? = nil) async throws -> ExternalTool.Output {
        try await ExternalTool(path: path).run(arguments, environment: environment)
    }

    /// Starts `keygate serve` and waits until it reports that it listens.
    public func serve(dataDir: String, log: String, environment: [String: String] = [:]) throws -> ServerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["serve", "--data-dir", dataDir]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let server = ServerProcess(process: process, log: log)
        let deadline = Date() + 60
        while Date() < deadline {
            if server.output.contains("keygate serving") { return server }
            if !process.isRunning { break }
            usleep(50_000)
        }
        process.terminate()
        throw ServerDidNotStart(log: server.output)
    }
}

/// A running `keygate serve`.
public final class ServerProcess: @unchecked Sendable {
    // `process` is only touched from the test that owns this object.
    public let process: Process
    public let log: String

    init(process: Process, log: String) {
        self.process = process
        self.log = log
    }

    public var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Sends SIGTERM and waits up to `timeout` seconds; returns the exit status, or nil if it hung.
    public func terminate(timeout: TimeInterval = 15) -> Int32? {
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date() + timeout
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

public struct ServerDidNotStart: Error, CustomStringConvertible {
    public var log: String
    public init(log: String) { self.log = log }
    public var description: String { "keygate serve did not start:\n\(log)" }
}

/// A data folder made by `keygate init` on free ports and served by `keygate serve`, for tests that
/// drive the binaries the way a user does.
public struct ServedDataFolder: Sendable {
    public let keygate: KeygateBinary
    public let dir: TemporaryDirectory
    /// The data folder.
    public let data: String
    public let https: Int
    public let http: Int
    public let server: ServerProcess

    /// `keygate init` (with `initArguments`), then `keygate serve`; stop it with ``stop()``.
    public static func start(_ label: String, initArguments: [String] = []) throws -> ServedDataFolder {
        let keygate = try KeygateBinary.locate()
        let dir = try TemporaryDirectory(label)
        let data = dir.file("data")
        let (https, http) = (try freePort(), try freePort())
        try keygate.run(
            ["init", "--data-dir", data, "--https-port", "\(https)", "--http-port", "\(http)"] + initArguments)
        let server = try keygate.serve(dataDir: data, log: dir.file("serve.log"))
        return ServedDataFolder(keygate: keygate, dir: dir, data: data, https: https, http: http, server: server)
    }

    public var httpsURL: String { "https://127.0.0.1:\(https)" }
    public var rootPath: String { data + "/ca/root.crt.pem" }

    public func stop() { _ = server.terminate() }
}
