import Foundation
import KeygateTestSupport
import Testing

/// Groups, the allowlist and a device enrolled by the real `keygate-agent` binary.
@Suite(.serialized, .tags(.binary), .fullRunOnly) struct OnboardingCommandTests {
    @Test func allowlistImportAndAgentEnrollment() throws {
        guard ExternalTool.available("openssl") else { return }
        let served = try ServedDataFolder.start("onboarding")
        defer { served.stop() }
        let (keygate, dir, data, https) = (served.keygate, served.dir, served.data, served.https)
        let agent = try KeygateBinary.locate("keygate-agent")

        let created = try keygate.run([
            "group", "create", "fleet", "--data-dir", data, "--attestation", "ddk", "--validity-days", "30",
        ])
        #expect(created.status == 0 && created.stdout.contains("Group fleet"), "\(created.combined)")
        let badGroup = try keygate.run(["group", "create", "bad", "--data-dir", data, "--attestation", "magic"])
        #expect(badGroup.status == 1 && badGroup.stderr.contains("invalidPolicy"))

        // The CSV: good rows, and bad ones reported by line number.
        try dir.write(
            "fleet.csv",
            """
            deviceId,group
            dev-1,fleet
            bad id!,fleet
            dev-2,fleet
            dev-1,fleet
            dev-3,fleet,extra
            dev-4,nogroup
            dev-5,fleet

            """)
        let strict = try keygate.run(["allowlist", "import", dir.file("fleet.csv"), "--data-dir", data, "--strict"])
        #expect(strict.status == 1, "\(strict.combined)")
        let afterStrict = try keygate.run(["allowlist", "list", "--data-dir", data])
        #expect(!afterStrict.stdout.contains("dev-1"), "--strict imports nothing when a row is bad")

        let imported = try keygate.run(["allowlist", "import", dir.file("fleet.csv"), "--data-dir", data])
        #expect(imported.status == 2, "\(imported.combined)")
        #expect(imported.stdout.contains("3 added"), "\(imported.stdout)")
        for line in ["line 3:", "line 5:", "line 6:", "line 7:"] {
            #expect(imported.stderr.contains(line), "\(line) missing in \(imported.stderr)")
        }
        // The group's first contact is `token` (the default): each staged device got a one-time token,
        // written once to a file only the operator can read.
        #expect(imported.stdout.contains("3 one-time enrollment tokens written to"), "\(imported.stdout)")
        let tokens = try dir.read("fleet.tokens.csv").split(separator: "\n").dropFirst()
        #expect(tokens.map { $0.split(separator: ",")[0] } == ["dev-1", "dev-2", "dev-5"])
        let mode = try FileManager.default.attributesOfItem(atPath: dir.file("fleet.tokens.csv"))[.posixPermissions]
        #expect((mode as? Int) == 0o600)
        #expect(shownFirstContact(try keygate.run(["group", "show", "fleet", "--data-dir", data]).stdout) == "token")
        let removed = try keygate.run(["allowlist", "remove", "dev-5", "--data-dir", data])
        #expect(removed.status == 0, "\(removed.combined)")
        #expect(!(try keygate.run(["allowlist", "list", "--data-dir", data])).stdout.contains("dev-5"))
        try keygate.run(["allowlist", "add", "dev-5", "--group", "fleet", "--data-dir", data])
        let updated = try keygate.run(["group", "update", "fleet", "--data-dir", data, "--validity-days", "10"])
        #expect(updated.status == 0 && updated.stdout.contains("10 days"), "\(updated.combined)")
        let shownGroup = try keygate.run(["group", "show", "fleet", "--data-dir", data])
        #expect(shownGroup.stdout.contains("10 days") && shownGroup.stdout.contains("ddk"))
        let groups = try keygate.run(["group", "list", "--data-dir", data])
        #expect(groups.stdout.contains("fleet"))
        let again = try keygate.run(["allowlist", "import", dir.file("fleet.csv"), "--data-dir", data])
        #expect(again.stdout.contains("0 added, 0 updated, 3 unchanged"), "\(again.stdout)")

        // Pin a DDK key computed at staging, then let the agent enroll.
        let identity = try agent.run(["identity", "--device-id", "dev-9", "--attribute", "machine-id=abc", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: identity.stdoutData) as? [String: String])
        let keyFile = try dir.write("dev-9.key", try #require(json["epoch0PublicKey"]))
        let added = try keygate.run([
            "allowlist", "add", "dev-9", "--group", "fleet", "--pin-key", keyFile, "--data-dir", data,
        ])
        #expect(added.status == 0, "\(added.combined)")

        let common = [
            "--server", "https://127.0.0.1:\(https)", "--ca-cert", data + "/ca/root.crt.pem", "--device-id", "dev-9",
            "--state-dir", dir.file("state"), "--attribute", "machine-id=abc",
        ]
        let enrolled = try agent.run(["enroll"] + common)
        #expect(enrolled.status == 0 && enrolled.stdout.contains("enrolled"), "\(enrolled.combined)")
        let chain = dir.file("state/device.crt.pem")
        let verify = try ExternalTool.openssl.run([
            "verify", "-CAfile", data + "/ca/root.crt.pem", "-untrusted", data + "/ca/issuing.crt.pem", chain,
        ])
        #expect(verify.status == 0, "\(verify.combined)")
        let subject = try ExternalTool.openssl.run(["x509", "-in", chain, "-noout", "-subject"])
        #expect(subject.stdout.contains("dev-9"))

        let status = try agent.run(["status"] + common)
        #expect(status.stdout.contains("server: enrolled"), "\(status.combined)")
        let shown = try keygate.run(["device", "show", "dev-9", "--data-dir", data])
        #expect(
            shown.stdout.contains("enrolled") && shown.stdout.contains("ddk")
                && shown.stdout.contains("device.enrolled"), "\(shown.stdout)")

        // Another machine claiming dev-9, which is registered already, holds no step of its key chain: the
        // agent says so (and how an operator lets a re-flashed device register again) without a session.
        let impostor = try agent.run(
            ["enroll"] + common.dropLast(2) + ["--attribute", "machine-id=xyz", "--state-dir", dir.file("imp")])
        #expect(impostor.status == 1, "\(impostor.combined)")
        #expect(
            impostor.stderr.contains("DDK state is missing") && impostor.stderr.contains("--allow-reregistration"),
            "\(impostor.combined)")

        let stranger = try agent.run([
            "enroll", "--server", "https://127.0.0.1:\(https)", "--ca-cert", data + "/ca/root.crt.pem", "--device-id",
            "nobody",
            "--state-dir", dir.file("nobody"), "--attribute", "a=b",
        ])
        #expect(stranger.status == 1 && stranger.stderr.contains("deviceNotAllowlisted"), "\(stranger.combined)")
        let devices = try keygate.run(["device", "list", "--data-dir", data, "--state", "enrolled"])
        #expect(devices.stdout.contains("dev-9") && !devices.stdout.contains("dev-1"))

        // Manual approval: the agent waits (exit 3) until an operator approves.
        try keygate.run(["group", "create", "gated", "--data-dir", data, "--approval", "manual"])
        let staged = try keygate.run(["allowlist", "add", "gw-1", "--group", "gated", "--data-dir", data])
        let token = try #require(staged.stdout.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(staged.stdout.contains("enrollment token (shown once"), "\(staged.stdout)")
        let gatedWithoutToken = [
            "--server", "https://127.0.0.1:\(https)", "--ca-cert", data + "/ca/root.crt.pem", "--device-id", "gw-1",
            "--state-dir", dir.file("gw"), "--attribute", "machine-id=gw",
        ]
        let noToken = try agent.run(["enroll"] + gatedWithoutToken)
        #expect(noToken.status == 1 && noToken.stderr.contains("enrollmentTokenInvalid"), "\(noToken.combined)")
        let gated = gatedWithoutToken + ["--token", token]
        let waiting = try agent.run(["enroll"] + gated)
        #expect(waiting.status == 3 && waiting.stdout.contains("pending approval"), "\(waiting.combined)")
        let pending = try keygate.run(["device", "list", "--data-dir", data, "--state", "pendingApproval"])
        #expect(pending.stdout.contains("gw-1"))
        let approved = try keygate.run(["device", "approve", "gw-1", "--data-dir", data])
        #expect(approved.status == 0 && approved.stdout.contains("approved"), "\(approved.combined)")
        let done = try agent.run(["enroll"] + gated)
        #expect(done.status == 0 && done.stdout.contains("enrolled"), "\(done.combined)")

        // The audit log: exported as JSON lines, anchored by a checkpoint, verified.
        let exported = try keygate.run(["audit", "export", "--data-dir", data, "-o", dir.file("audit.jsonl")])
        #expect(exported.status == 0 && exported.stdout.contains("entries written"), "\(exported.combined)")
        let lines = try dir.read("audit.jsonl").split(separator: "\n")
        let entries = try lines.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(entries.compactMap { $0["sequence"] as? Int } == Array(1...entries.count))
        #expect(entries.contains { $0["action"] as? String == "device.enrolled" && $0["subject"] as? String == "gw-1" })
        let checkpoint = try keygate.run(["audit", "checkpoint", "--data-dir", data])
        #expect(checkpoint.stdout.contains("checkpoint written"), "\(checkpoint.combined)")
        let verified = try keygate.run(["audit", "verify", "--data-dir", data])
        #expect(
            verified.status == 0 && verified.stdout.contains("intact (keyed from entry 1;")
                && verified.stdout.contains("newest checkpoint at entry \(entries.count)"),
            "\(verified.combined)")
    }
}

/// The first-contact policy `group show` prints (`token`, `pinned`, `OPEN`), or `nil`.
func shownFirstContact(_ output: String) -> String? {
    output.split(separator: "\n").first { $0.contains("first contact") }
        .flatMap { $0.split(separator: " ").dropFirst(2).first.map(String.init) }
}
