import Foundation
import KeygateTestSupport
import Testing

/// `keygate-agent` tells what is wrong and how to fix it, never a bare library error.
@Suite(.serialized, .tags(.binary), .fullRunOnly) struct AgentErrorTests {
    @Test func eachMistakeGetsAMessageThatSaysWhatToDo() async throws {
        let served = try ServedDataFolder.start("agent-errors")
        defer { served.stop() }
        let (keygate, dir, data, https) = (served.keygate, served.dir, served.data, served.https)
        let agent = try KeygateBinary.locate("keygate-agent")
        try await keygate.run(["group", "create", "fleet", "--data-dir", data, "--attestation", "ddk", "--first-contact", "open"])
        try await keygate.run(["allowlist", "add", "dev-1", "--group", "fleet", "--data-dir", data])
        let root = data + "/ca/root.crt.pem"
        let state = dir.file("state")
        let base = ["--server", "https://127.0.0.1:\(https)", "--ca-cert", root, "--device-id", "dev-1"]
        let enrolled = try await agent.run(["enroll"] + base + ["--state-dir", state, "--attribute", "machine-id=m-1"])
        #expect(enrolled.status == 0, "\(enrolled.combined)")

        // A DDK device run without the attributes it enrolled with.
        let bare = try await agent.run(["renew"] + base + ["--state-dir", state, "--attributes-root", dir.file("empty")])
        #expect(bare.status != 0)
        #expect(bare.stderr.contains("--attribute") && bare.stderr.contains("--attributes linux"), "\(bare.combined)")
        #expect(!bare.combined.contains("failedToLoadPrivateKey"), "\(bare.combined)")
        let other = try await agent.run(["renew"] + base + ["--state-dir", state, "--attribute", "machine-id=m-2"])
        #expect(other.status != 0 && other.stderr.contains("does not match its certificate"), "\(other.combined)")
        let right = try await agent.run(["renew"] + base + ["--state-dir", state, "--attribute", "machine-id=m-1"])
        #expect(right.status == 0 && right.stdout.contains("renewed"), "\(right.combined)")

        // A state folder that holds no enrollment.
        let missing = try await agent.run(["renew"] + base + ["--state-dir", dir.file("nowhere"), "--attribute", "a=b"])
        #expect(missing.status != 0, "\(missing.combined)")
        #expect(missing.stderr.contains("no certificate in") && missing.stderr.contains("enroll"), "\(missing.combined)")

        // A CA file that is not the CA of this Keygate.
        let otherData = dir.file("other")
        try await keygate.run(["init", "--data-dir", otherData, "--https-port", "0", "--http-port", "0"])
        let untrusted = try await agent.run(
            ["status", "--server", "https://127.0.0.1:\(https)", "--ca-cert", otherData + "/ca/root.crt.pem",
             "--device-id", "dev-1", "--state-dir", state, "--attribute", "machine-id=m-1"])
        #expect(untrusted.status != 0, "\(untrusted.combined)")
        #expect(untrusted.stderr.contains("not trusted by --ca-cert"), "\(untrusted.combined)")

        // A server that is not Keygate (a plain web server).
        let port = try freePort()
        let web = Process()
        web.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        web.arguments = ["python3", "-m", "http.server", "\(port)", "--bind", "127.0.0.1", "--directory", dir.path]
        web.standardOutput = FileHandle.nullDevice
        web.standardError = FileHandle.nullDevice
        try web.run()
        defer {
            // SIGKILL: a child spawned from a test thread may inherit a signal mask that blocks SIGTERM.
            kill(web.processIdentifier, SIGKILL)
            web.waitUntilExit()
        }
        var notKeygate = try await agent.run(
            ["status", "--server", "http://127.0.0.1:\(port)", "--ca-cert", root, "--device-id", "dev-1",
             "--state-dir", state, "--attribute", "machine-id=m-1"])
        for _ in 0..<20 where notKeygate.stderr.contains("cannot reach") {
            try await Task.sleep(for: .milliseconds(200))  // the web server is still starting
            notKeygate = try await agent.run(
                ["status", "--server", "http://127.0.0.1:\(port)", "--ca-cert", root, "--device-id", "dev-1",
                 "--state-dir", state, "--attribute", "machine-id=m-1"])
        }
        #expect(notKeygate.status != 0, "\(notKeygate.combined)")
        #expect(notKeygate.stderr.contains("without a Keygate error"), "\(notKeygate.combined)")
    }
}

/// `keygate init` sets the modes of what it writes itself: a permissive umask changes nothing.
@Suite(.tags(.binary), .fullRunOnly) struct DataFolderModeTests {
    @Test func initUnderUmask000LeavesNothingReadableByOthers() async throws {
        let keygate = try KeygateBinary.locate()
        let dir = try TemporaryDirectory("umask")
        let data = dir.file("data")
        let shell = ExternalTool(path: "/bin/sh")
        let run = try await shell.run([
            "-c", "umask 000 && exec \"$0\" init --data-dir \"$1\" --https-port 0 --http-port 0", keygate.path, data,
        ])
        #expect(run.status == 0, "\(run.combined)")
        func mode(_ path: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1
        }
        for folder in ["", "/ca", "/tls"] {
            let found = mode(data + folder)
            #expect(found == 0o700, "\(folder.isEmpty ? "data" : folder) is \(String(found, radix: 8))")
        }
        for secret in ["/tls/server.key.pem", "/keygate.sqlite"] {
            let found = mode(data + secret)
            #expect(found >= 0 && found & 0o077 == 0, "\(secret) is \(String(found, radix: 8))")
        }
        let keys = try FileManager.default.contentsOfDirectory(atPath: data + "/ca").filter { $0.hasSuffix(".key.pem") }
        #expect(!keys.isEmpty)
        for key in keys { #expect(mode(data + "/ca/" + key) & 0o077 == 0, "\(key)") }
    }
}

/// `keygate token` through the binary: a read-only token reads and cannot change; a revoked one is refused.
@Suite(.tags(.binary), .fullRunOnly) struct TokenCommandTests {
    @Test func createListUseAndRevokeATokenWithARole() async throws {
        let served = try ServedDataFolder.start("tokens")
        defer { served.stop() }
        let (keygate, data) = (served.keygate, served.data)
        let created = try await keygate.run([
            "token", "create", "--name", "viewer", "--role", "read-only", "--expires", "1h", "--data-dir", data,
        ])
        #expect(created.status == 0, "\(created.combined)")
        let viewer = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(viewer.hasPrefix("kg_") && created.stderr.contains("not shown again"), "\(created.combined)")
        let listed = try await keygate.run(["token", "list", "--data-dir", data])
        #expect(listed.stdout.contains("viewer") && listed.stdout.contains("read-only"), "\(listed.stdout)")
        #expect(!listed.stdout.contains(viewer))
        let asViewer = ["--data-dir", data, "--token", viewer]
        let read = try await keygate.run(["group", "list"] + asViewer)
        #expect(read.status == 0, "\(read.combined)")
        let write = try await keygate.run(["group", "create", "g1", "--attestation", "ddk"] + asViewer)
        #expect(write.status != 0 && write.stderr.contains("roleForbidden"), "\(write.combined)")
        let revoked = try await keygate.run(["token", "revoke", "viewer", "--data-dir", data])
        #expect(revoked.status == 0, "\(revoked.combined)")
        let after = try await keygate.run(["group", "list"] + asViewer)
        #expect(after.status != 0 && after.stderr.contains("tokenExpired"), "\(after.combined)")
        let bad = try await keygate.run(["token", "create", "--name", "x", "--role", "king", "--data-dir", data])
        #expect(bad.status != 0 && bad.stderr.contains("--role"), "\(bad.combined)")
    }
}
