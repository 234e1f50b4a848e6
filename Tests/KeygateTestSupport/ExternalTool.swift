public import Foundation
import Testing

/// Runs outside tools (openssl, pkilint's linters, the `keygate` binary) and captures their output.
///
/// Tests that need a tool call ``ExternalTool/require(_:)``: when the tool is missing the test is
/// skipped, unless `KEYGATE_REQUIRE_TOOLS=1` (set by `.ci/run`), where a missing tool fails the run.
public struct ExternalTool: Sendable {
    public let path: String

    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var stdoutData: Data
        public var combined: String { stdout + stderr }
    }

    public init(path: String) {
        self.path = path
    }

    /// Looks the tool up in the package's `.venv/bin`, then on PATH.
    public static func find(_ name: String) -> ExternalTool? {
        var candidates = [packageRoot + "/.venv/bin/" + name]
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            candidates.append(String(folder) + "/" + name)
        }
        return candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }).map(ExternalTool.init)
    }

    public static var toolsRequired: Bool { ProcessInfo.processInfo.environment["KEYGATE_REQUIRE_TOOLS"] == "1" }

    /// Whether `name` can run here; `false` makes a test skip itself (never in CI, which requires tools).
    public static func available(_ name: String) -> Bool {
        if find(name) != nil { return true }
        if toolsRequired {
            Issue.record("\(name) is required (KEYGATE_REQUIRE_TOOLS=1) but not installed; run scripts/test-tools.sh")
        }
        return false
    }

    public static func require(_ name: String) throws -> ExternalTool {
        guard let tool = find(name) else { throw ToolMissing(name: name) }
        return tool
    }

    public static var openssl: ExternalTool {
        get throws { try require("openssl") }
    }

    /// Runs with `arguments`, feeding `input` to standard input; waits at most `timeout` seconds.
    @discardableResult
    public func run(
        _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil, timeout: TimeInterval = 120
    )
        throws -> Output
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        let inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inPipe
        try process.run()
        if let input { inPipe.fileHandleForWriting.write(input) }
        try? inPipe.fileHandleForWriting.close()
        let collector = OutputCollector(out: out, err: err)
        let deadline = Date() + timeout
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        process.waitUntilExit()
        let (stdout, stderr) = collector.finish()
        return Output(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self), stdoutData: stdout)
    }
}

extension ExternalTool {
    /// The same from async code: the tool runs on a thread of its own, so waiting for it never
    /// holds one of the cooperative pool's few threads (an in-process server under test needs them).
    @discardableResult
    public func run(
        _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil, timeout: TimeInterval = 120
    ) async throws -> Output {
        let tool = self
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try tool.runBlocking(arguments, input: input, environment: environment, timeout: timeout)
                    })
            }
            thread.start()
        }
    }

    func runBlocking(_ arguments: [String], input: Data?, environment: [String: String]?, timeout: TimeInterval)
        throws -> Output
    {
        try run(arguments, input: input, environment: environment, timeout: timeout)
    }
}

public struct ToolMissing: Error, CustomStringConvertible {
    public var name: String
    public var description: String { "\(name) is not installed; run scripts/test.sh, which installs the test tools" }
}

/// Drains both pipes on background threads so a chatty tool never blocks on a full pipe.
final class OutputCollector: @unchecked Sendable {
    // Each buffer is written by one thread and read after `group.wait()`.
    private var stdout = Data()
    private var stderr = Data()
    private let group = DispatchGroup()

    init(out: Pipe, err: Pipe) {
        group.enter()
        DispatchQueue.global().async {
            self.stdout = out.fileHandleForReading.readDataToEndOfFile()
            self.group.leave()
        }
        group.enter()
        DispatchQueue.global().async {
            self.stderr = err.fileHandleForReading.readDataToEndOfFile()
            self.group.leave()
        }
    }

    func finish() -> (Data, Data) {
        group.wait()
        return (stdout, stderr)
    }
}
