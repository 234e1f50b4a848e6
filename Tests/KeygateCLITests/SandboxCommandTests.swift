import Foundation
import KeygateTestSupport
import Testing

/// `keygate sandbox` as a user runs it: start, then `faults` and `inspect` against it.
@Suite(.tags(.binary), .fullRunOnly) struct SandboxCommandTests {
    @Test func startThenTurnKeyVaultDownAndUpAndInspect() throws {
        let keygate = try KeygateBinary.locate()
        let folder = try TemporaryDirectory("sandbox-cli")
        let data = folder.file("sandbox")
        let notRunning = try keygate.run(["sandbox", "inspect", "--data-dir", data])
        #expect(notRunning.status != 0 && notRunning.stderr.contains("connection.json"), "\(notRunning.combined)")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: keygate.path)
        process.arguments = [
            "sandbox", "--data-dir", data, "--https-port", "\(try freePort())", "--mqtt-port", "0", "--fault-rate",
            "0.1", "--surface", "central",
        ]
        let log = folder.file("sandbox.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let deadline = Date() + 30
        while !FileManager.default.fileExists(atPath: data + "/connection.json") && Date() < deadline {
            usleep(50_000)
        }
        let printed = try String(contentsOfFile: log, encoding: .utf8)
        #expect(
            printed.contains("serviceConnectionString") && printed.contains("registryConnectionString"), "\(printed)")

        let shown = try keygate.run(["sandbox", "faults", "--data-dir", data])
        #expect(shown.status == 0, "\(shown.combined)")
        let centralRow = shown.stdout.split(separator: "\n").first { $0.hasPrefix("central") } ?? ""
        #expect(centralRow.contains("0.10"), "the start flags apply to the surface named: \(shown.stdout)")
        let down = try keygate.run(["sandbox", "faults", "--data-dir", data, "--surface", "keyvault", "--down"])
        let keyVaultRow = down.stdout.split(separator: "\n").first { $0.hasPrefix("keyvault") } ?? ""
        #expect(down.status == 0 && keyVaultRow.contains("yes"), "\(down.combined)")
        let up = try keygate.run(["sandbox", "faults", "--data-dir", data, "--surface", "keyvault", "--up", "--json"])
        #expect(up.stdout.contains("\"down\" : false"), "\(up.combined)")
        let wrong = try keygate.run(["sandbox", "faults", "--data-dir", data, "--surface", "moon", "--down"])
        #expect(wrong.status != 0 && wrong.stderr.contains("unknown surface"), "\(wrong.combined)")

        let inspected = try keygate.run(["sandbox", "inspect", "--data-dir", data])
        #expect(inspected.status == 0 && inspected.stdout.contains("Hub devices"), "\(inspected.combined)")
    }
}
