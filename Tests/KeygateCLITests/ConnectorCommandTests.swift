import Foundation
import KeygateTestSupport
import Testing

/// `keygate connector` and `keygate outbox` through the binaries, against `keygate sandbox`.
@Suite(.tags(.binary), .fullRunOnly) struct ConnectorCommandTests {
    @Test func addTestListAndProtectAConnectorThatAGroupUses() throws {
        let keygate = try KeygateBinary.locate()
        let folder = try TemporaryDirectory("connector-cli")
        let sandboxData = folder.file("sandbox")
        let sandbox = Process()
        sandbox.executableURL = URL(fileURLWithPath: keygate.path)
        sandbox.arguments = [
            "sandbox", "--data-dir", sandboxData, "--https-port", "\(try freePort())", "--mqtt-port", "0",
        ]
        sandbox.standardOutput = FileHandle.nullDevice
        sandbox.standardError = FileHandle.nullDevice
        try sandbox.run()
        defer {
            sandbox.terminate()
            sandbox.waitUntilExit()
        }
        let deadline = Date() + 30
        while !FileManager.default.fileExists(atPath: sandboxData + "/connection.json") && Date() < deadline {
            usleep(50_000)
        }
        let facts = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: sandboxData + "/connection.json")))
                as? [String: Any])
        let dps = try #require(facts["dps"] as? [String: Any])
        let connectionString = try #require(dps["serviceConnectionString"] as? String)
        try folder.write("dps.cs", connectionString)

        let data = folder.file("data")
        let initialized = try keygate.run([
            "init", "--data-dir", data, "--https-port", "\(try freePort())", "--http-port", "\(try freePort())",
        ])
        #expect(initialized.status == 0, "\(initialized.combined)")
        let server = try keygate.serve(dataDir: data, log: folder.file("serve.log"))
        defer { _ = server.terminate() }

        let bad = try keygate.run([
            "connector", "add", "broken", "--data-dir", data, "--type", "dps", "--connection-string", "HostName=x",
            "--id-scope", "0ne0",
        ])
        #expect(bad.status != 0 && bad.stderr.contains("invalidConnector"), "\(bad.combined)")
        let added = try keygate.run([
            "connector", "add", "azure", "--data-dir", data, "--type", "dps", "--connection-string",
            "@" + folder.file("dps.cs"), "--id-scope", dps["idScope"] as? String ?? "", "--global-endpoint",
            dps["deviceEndpoint"] as? String ?? "", "--azure-ca-cert", facts["caCertificate"] as? String ?? "",
        ])
        #expect(added.status == 0, "\(added.combined)")
        #expect(!added.stdout.contains("SharedAccessKey"), "secrets are never printed")
        let tested = try keygate.run(["connector", "test", "azure", "--data-dir", data])
        #expect(tested.status == 0 && tested.stdout.contains("answered"), "\(tested.combined)")
        #expect(added.stdout.contains("at most 1000 calls a minute to DPS (Azure's published limit)"), "\(added.stdout)")
        let paced = try keygate.run(["connector", "update", "azure", "--max-calls-per-minute", "600", "--data-dir", data])
        #expect(paced.status == 0 && paced.stdout.contains("at most 600 calls a minute"), "\(paced.combined)")
        let noHub = try keygate.run(["connector", "update", "azure", "--hub-calls-per-minute", "50", "--data-dir", data])
        #expect(noHub.status != 0 && noHub.stderr.contains("invalidConnector"), "\(noHub.combined)")
        let badPace = try keygate.run(["connector", "update", "azure", "--max-calls-per-minute", "0", "--data-dir", data])
        #expect(badPace.status != 0 && badPace.stderr.contains("1 to 100000, or default"), "\(badPace.combined)")
        let reset = try keygate.run(["connector", "update", "azure", "--max-calls-per-minute", "default", "--data-dir", data])
        #expect(reset.stdout.contains("at most 1000 calls a minute"), "\(reset.combined)")
        let updates = try keygate.run(["audit", "list", "--data-dir", data])
        #expect(updates.stdout.contains("connector.updated"), "\(updates.combined)")
        let listed = try keygate.run(["connector", "list", "--data-dir", data])
        #expect(listed.stdout.contains("azure") && listed.stdout.contains("dps"), "\(listed.combined)")

        let group = try keygate.run(["group", "create", "fleet", "--data-dir", data, "--connector", "azure"])
        #expect(group.status == 0, "\(group.combined)")
        let inUse = try keygate.run(["connector", "remove", "azure", "--data-dir", data])
        #expect(inUse.status != 0 && inUse.stderr.contains("connectorInUse"), "\(inUse.combined)")
        let outbox = try keygate.run(["outbox", "list", "--data-dir", data])
        #expect(outbox.status == 0 && outbox.stdout.contains("Totals: none"), "\(outbox.combined)")

        // Quarantine and re-authorization queue the Azure changes.
        let allowlisted = try keygate.run(["allowlist", "add", "dev-q", "--group", "fleet", "--data-dir", data])
        #expect(allowlisted.status == 0, "\(allowlisted.combined)")
        let quarantined = try keygate.run(["device", "quarantine", "dev-q", "--reason", "stolen", "--data-dir", data])
        #expect(quarantined.stdout.contains("dev-q: quarantined"), "\(quarantined.combined)")
        let back = try keygate.run(["device", "reauthorize", "dev-q", "--data-dir", data])
        #expect(back.stdout.contains("dev-q: registered"), "\(back.combined)")
        let queued = try keygate.run(["outbox", "list", "--device", "dev-q", "--data-dir", data])
        #expect(queued.stdout.contains("disable") && queued.stdout.contains("enable"), "\(queued.combined)")
        let audit = try keygate.run(["audit", "list", "--data-dir", data])
        #expect(audit.stdout.contains("device.quarantined") && audit.stdout.contains("device.reauthorized"))

        let missing = try keygate.run(["outbox", "retry", "42", "--data-dir", data])
        #expect(missing.status != 0 && missing.stderr.contains("outboxItemNotFound"), "\(missing.combined)")
    }
}
