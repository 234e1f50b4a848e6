import Foundation
import KeygateTestSupport
import Testing

/// A DDK device's state folder copied whole (what copying a disk or SD-card image does, attributes
/// included): through the real binaries, the copy and the original cannot both follow the key chain.
/// Whichever runs second is caught: the device is quarantined `cloneSuspected` and its certificates
/// revoked (OCSP says so).
@Suite(.serialized, .tags(.binary, .outsideTool), .fullRunOnly) struct CloneDetectionTests {
    struct Deployment {
        let served: ServedDataFolder
        let agent: KeygateBinary
        var keygate: KeygateBinary { served.keygate }
        var dir: TemporaryDirectory { served.dir }
        var data: String { served.data }
        var https: Int { served.https }
        var http: Int { served.http }
        var server: ServerProcess { served.server }

        static func start(_ devices: [String]) throws -> Deployment {
            let served = try ServedDataFolder.start("clone")
            try served.keygate.run(["group", "create", "fleet", "--data-dir", served.data, "--attestation", "ddk", "--first-contact", "open"])
            for device in devices {
                try served.keygate.run(["allowlist", "add", device, "--group", "fleet", "--data-dir", served.data])
            }
            return Deployment(served: served, agent: try KeygateBinary.locate("keygate-agent"))
        }

        func agent(_ command: String, _ device: String, state: String) async throws -> ExternalTool.Output {
            try await agent.run([
                command, "--server", "https://127.0.0.1:\(https)", "--ca-cert", data + "/ca/root.crt.pem",
                "--device-id", device, "--state-dir", dir.file(state), "--attribute", "serial=\(device)",
            ])
        }

        /// Enrolls the device into folder A and copies the whole folder to B.
        func enrollAndCopy(_ device: String) async throws {
            let enrolled = try await agent("enroll", device, state: "\(device)-A")
            #expect(enrolled.status == 0, "\(enrolled.combined)")
            try FileManager.default.copyItem(atPath: dir.file("\(device)-A"), toPath: dir.file("\(device)-B"))
        }

        /// The device is quarantined as a clone, and OCSP says its certificate is revoked.
        func expectCaught(_ device: String) async throws {
            let shown = try await keygate.run(["device", "show", device, "--data-dir", data])
            #expect(shown.stdout.contains("quarantined") && shown.stdout.contains("cloneSuspected"), "\(shown.stdout)")
            let leaf = dir.file("\(device)-A/device.crt.pem")
            let answer = try await ExternalTool.openssl.run([
                "ocsp", "-issuer", data + "/ca/issuing.crt.pem", "-cert", leaf, "-url",
                "http://127.0.0.1:\(http)/pki/ocsp", "-CAfile", data + "/ca/chain.pem",
            ])
            #expect(answer.stdout.contains(": revoked") && answer.stdout.contains("keyCompromise"), "\(answer.combined)")
        }
    }

    @Test func aCopyThatRanAnyNumberOfSessionsIsCaughtWhenTheOriginalRunsAgain() async throws {
        guard ExternalTool.available("openssl") else { return }
        let counts = [1, 2, 5]
        let d = try Deployment.start(counts.map { "cam-\($0)" })
        defer { _ = d.server.terminate() }
        for count in counts {
            let device = "cam-\(count)"
            try await d.enrollAndCopy(device)
            for run in 1...count {
                let copy = try await d.agent("status", device, state: "\(device)-B")
                #expect(copy.status == 0, "the copy's session \(run) succeeds: \(copy.combined)")
            }
            let original = try await d.agent("status", device, state: "\(device)-A")
            #expect(original.status != 0, "\(original.combined)")
            #expect(original.stderr.contains("cloneSuspected"), "\(original.combined)")
            try await d.expectCaught(device)
            // Neither party gets in any more.
            let copyAgain = try await d.agent("status", device, state: "\(device)-B")
            #expect(copyAgain.status != 0 && copyAgain.stderr.contains("deviceQuarantined"), "\(copyAgain.combined)")
        }
    }

    @Test func aCopyThatRunsAfterTheOriginalIsCaught() async throws {
        guard ExternalTool.available("openssl") else { return }
        let d = try Deployment.start(["cam-r"])
        defer { _ = d.server.terminate() }
        try await d.enrollAndCopy("cam-r")
        for _ in 0..<2 {
            let original = try await d.agent("status", "cam-r", state: "cam-r-A")
            #expect(original.status == 0, "\(original.combined)")
        }
        let copy = try await d.agent("status", "cam-r", state: "cam-r-B")
        #expect(copy.status != 0 && copy.stderr.contains("cloneSuspected"), "\(copy.combined)")
        try await d.expectCaught("cam-r")
    }

    /// SIGKILL at any moment of a session (before the secret is written, after it is written, after
    /// Keygate moved, before or after the answer is recorded): the next session succeeds, no fork.
    @Test func anAgentKilledAtAnyStepOfASessionCarriesOnWithoutAFalseFork() async throws {
        let d = try Deployment.start(["cam-k"])
        defer { _ = d.server.terminate() }
        let enrolled = try await d.agent("enroll", "cam-k", state: "cam-k-A")
        #expect(enrolled.status == 0, "\(enrolled.combined)")
        var killed = 0
        for round in 0..<24 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: d.agent.path)
            process.arguments = [
                "status", "--server", "https://127.0.0.1:\(d.https)", "--ca-cert", d.data + "/ca/root.crt.pem",
                "--device-id", "cam-k", "--state-dir", d.dir.file("cam-k-A"), "--attribute", "serial=cam-k",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Spread over the whole session: process start, challenge, secret written, status, answer.
            try await Task.sleep(for: .microseconds(20_000 + (round * 37_000) % 400_000))
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killed += 1
            }
            process.waitUntilExit()
            let next = try await d.agent("status", "cam-k", state: "cam-k-A")
            #expect(next.status == 0, "round \(round): \(next.combined)")
        }
        #expect(killed > 0, "some sessions were killed midway")
        let shown = try await d.keygate.run(["device", "show", "cam-k", "--data-dir", d.data])
        #expect(shown.stdout.contains("enrolled") && !shown.stdout.contains("cloneSuspected"), "\(shown.stdout)")
    }
}
