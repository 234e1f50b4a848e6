import Foundation
import KeygateTestSupport
import Testing

/// The lifecycle through the real binaries: a short-lived group, the agent renewing over mTLS,
/// `cert list --expiring`, a rotation, quarantine/re-authorization and retirement.
@Suite(.serialized, .tags(.binary), .fullRunOnly) struct LifecycleCommandTests {
    @Test func lifecycleCommandsThroughTheBinaries() throws {
        let keygate = try KeygateBinary.locate()
        let agent = try KeygateBinary.locate("keygate-agent")
        let dir = try TemporaryDirectory("lifecycle-cli")
        let data = dir.file("data")
        let (https, http) = (try freePort(), try freePort())
        try keygate.run(["init", "--data-dir", data, "--https-port", "\(https)", "--http-port", "\(http)"])
        let server = try keygate.serve(dataDir: data, log: dir.file("serve.log"))
        defer { _ = server.terminate() }

        let badValidity = try keygate.run(["group", "create", "lab", "--data-dir", data, "--validity", "10s"])
        #expect(badValidity.status == 1 && badValidity.stderr.contains("invalidPolicy"), "\(badValidity.combined)")
        let created = try keygate.run([
            "group", "create", "lab", "--data-dir", data, "--validity", "10m", "--quarantine-action", "revoke",
            "--release-held", "false", "--first-contact", "open",
        ])
        #expect(created.status == 0, "\(created.combined)")
        #expect(created.stdout.contains("600 seconds") && created.stdout.contains("revoke certificates"))
        try keygate.run(["allowlist", "add", "cam-1", "--group", "lab", "--data-dir", data])

        let common = [
            "--server", "https://127.0.0.1:\(https)", "--ca-cert", data + "/ca/root.crt.pem", "--device-id", "cam-1",
            "--state-dir", dir.file("state"), "--attribute", "machine-id=cam",
        ]
        let notYet = try agent.run(["renew"] + common)
        #expect(notYet.status == 1 && notYet.stderr.contains("no certificate in"), "\(notYet.combined)")
        let enrolled = try agent.run(["enroll"] + common)
        #expect(enrolled.status == 0, "\(enrolled.combined)")
        let check = try agent.run(["renew", "--check"] + common)
        #expect(check.status == 0 && check.stdout.contains("renew after") && check.stdout.contains("(window)"))

        // A ten-minute certificate is within the 7-day expiry watch until it is renewed.
        let firstSerial = try #require(check.stdout.split(separator: " ").dropFirst().first.map(String.init))
        let expiring = try keygate.run(["cert", "list", "--expiring", "7d", "--data-dir", data])
        #expect(expiring.stdout.contains(firstSerial), "\(expiring.combined)")
        let renewed = try agent.run(["renew"] + common)
        #expect(renewed.status == 0 && renewed.stdout.contains("renewed: certificate"), "\(renewed.combined)")
        let afterRenewal = try keygate.run(["cert", "list", "--expiring", "7d", "--data-dir", data])
        #expect(!afterRenewal.stdout.contains(firstSerial), "a renewed certificate is no longer listed")

        let rotation = try keygate.run([
            "group", "rotate", "lab", "--per-minute", "10", "--no-wait", "--data-dir", data,
        ])
        #expect(rotation.status == 0 && rotation.stdout.contains("1 enrolled device(s)"), "\(rotation.combined)")
        let slot = try agent.run(["renew", "--check"] + common)
        #expect(slot.stdout.contains("(rotation)"), "\(slot.combined)")
        let unknownGroup = try keygate.run(["group", "rotate", "nope", "--no-wait", "--data-dir", data])
        #expect(unknownGroup.status == 1 && unknownGroup.stderr.contains("groupNotFound"))

        let quarantined = try keygate.run([
            "device", "quarantine", "cam-1", "--reason", "tamper", "--data-dir", data,
        ])
        #expect(quarantined.stdout.contains("cam-1: quarantined"), "\(quarantined.combined)")
        let refused = try agent.run(["renew", "--check"] + common)
        #expect(refused.status == 1 && refused.stderr.contains("deviceQuarantined"), "\(refused.combined)")
        let revoked = try keygate.run(["cert", "list", "--status", "revoked", "--data-dir", data])
        #expect(revoked.stdout.contains("CN=cam-1"), "the group revokes on quarantine: \(revoked.stdout)")
        let back = try keygate.run(["device", "reauthorize", "cam-1", "--data-dir", data])
        #expect(back.stdout.contains("cam-1: registered"), "\(back.combined)")
        let reenrolled = try agent.run(["enroll"] + common)
        #expect(reenrolled.status == 0, "\(reenrolled.combined)")

        let retired = try keygate.run(["device", "retire", "cam-1", "--reason", "end of life", "--data-dir", data])
        #expect(retired.stdout.contains("cam-1: retired"), "\(retired.combined)")
        let gone = try agent.run(["renew", "--check"] + common)
        #expect(gone.status == 1 && gone.stderr.contains("deviceRetired"), "\(gone.combined)")
        let audit = try keygate.run(["audit", "list", "--device", "cam-1", "--data-dir", data])
        for action in ["certificate.renewed", "device.quarantined", "device.reauthorized", "device.retired"] {
            #expect(audit.stdout.contains(action), "\(action) in \(audit.stdout)")
        }
        #expect(try keygate.run(["audit", "verify", "--data-dir", data]).status == 0)
        let twice = try keygate.run(["device", "retire", "cam-1", "--data-dir", data])
        #expect(twice.status == 1 && twice.stderr.contains("invalidTransition"), "\(twice.combined)")
    }
}
