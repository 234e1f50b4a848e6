import Foundation
import KeygateTestSupport
import Testing

/// `keygate demo`, the README's main command, through the binary.
@Suite(.tags(.binary), .fullRunOnly) struct DemoCommandTests {
    @Test func twoHundredDevicesGoThroughAllStepsWhileDPSFailsThirtyPercentOfCalls() async throws {
        let keygate = try KeygateBinary.locate()
        let run = try await ExternalTool(path: keygate.path).run(
            ["demo", "--devices", "200", "--fault-rate", "0.3", "--concurrency", "50"], timeout: 600)
        #expect(run.status == 0, "\(run.combined.suffix(3000))")
        #expect(run.stdout.contains("Demo passed"))
        #expect(
            run.stdout.contains("first telemetry acknowledged                200/200"), "\(run.stdout.suffix(1500))")
        #expect(run.stdout.contains("Sandbox: 200 DPS enrollments, 200 hub devices"), "exactly one enrollment each")
        // "Sandbox: … messages; N injected faults": with a 30 % fault rate N is well above zero.
        let line = run.stdout.split(separator: "\n").first { $0.hasPrefix("Sandbox:") }.map(String.init) ?? ""
        let injected = line.firstMatch(of: /; (\d+) injected faults$/).flatMap { Int($0.1) }
        #expect((injected ?? 0) > 0, "faults were injected: \(line)")
    }

    @Test func theDemoRefusesNonsense() async throws {
        let keygate = try KeygateBinary.locate()
        let bad = try await keygate.run(["demo", "--devices", "0"])
        #expect(bad.status != 0 && bad.stderr.contains("--devices must be"), "\(bad.combined)")
        let transport = try await keygate.run(["demo", "--dps-transport", "carrier-pigeon"])
        #expect(transport.status != 0 && transport.stderr.contains("https or mqtt"))
    }
}
