import Foundation
import KeygateTestSupport
import Testing

/// The README's flow, with the real binary, openssl and curl: init, serve, sign, revoke, restart.
@Suite(.serialized, .tags(.binary), .fullRunOnly) struct EndToEndTests {
    @Test func everyCommandHasHelp() throws {
        let keygate = try KeygateBinary.locate()
        let commands = [
            [], ["init"], ["serve"], ["ca"], ["ca", "show"], ["cert"], ["cert", "sign"], ["cert", "revoke"],
            ["cert", "list"],
            ["cert", "show"], ["audit"], ["audit", "list"], ["audit", "verify"], ["bench"], ["bench", "issue"],
            ["group"],
            ["group", "create"], ["group", "list"], ["group", "show"], ["group", "update"], ["allowlist"],
            ["allowlist", "add"],
            ["allowlist", "import"], ["allowlist", "list"], ["allowlist", "remove"], ["device"], ["device", "list"],
            ["device", "show"], ["device", "approve"], ["sandbox"], ["sandbox", "start"], ["sandbox", "inspect"],
            ["sandbox", "faults"], ["connector"], ["connector", "add"], ["connector", "list"], ["connector", "show"],
            ["connector", "test"], ["connector", "remove"], ["outbox"], ["outbox", "list"], ["outbox", "retry"],
            ["bench", "sandbox"], ["demo"], ["device", "quarantine"], ["device", "reauthorize"],
        ]
        for command in commands {
            let result = try keygate.run(command + ["--help"])
            #expect(result.status == 0, "\(command) --help")
            #expect(
                result.stdout.contains("OVERVIEW:") && result.stdout.contains("USAGE:"), "\(command): \(result.stdout)")
        }
    }

    @Test func initServeSignRevokeRestart() throws {
        guard ExternalTool.available("openssl"), ExternalTool.available("curl") else { return }
        let keygate = try KeygateBinary.locate()
        let openssl = try ExternalTool.openssl
        let curl = try ExternalTool.require("curl")
        let dir = try TemporaryDirectory("e2e")
        let data = dir.file("data")
        let (https, http) = (try freePort(), try freePort())

        // init: encrypted CA keys, secrets 0600, token printed once.
        let initialized = try keygate.run([
            "init", "--data-dir", data, "--https-port", "\(https)", "--http-port", "\(http)",
        ])
        #expect(initialized.status == 0, "\(initialized.combined)")
        let token = try String(contentsOfFile: data + "/admin-token", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        #expect(initialized.stdout.contains(token))
        #expect(initialized.stdout.contains("passphrase  generated"))
        for secret in ["admin-token", "passphrase", "ca/root.key.pem", "ca/issuing.key.pem", "tls/server.key.pem"] {
            let mode = try FileManager.default.attributesOfItem(atPath: data + "/" + secret)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(secret) must be 0600")
        }
        for key in ["ca/root.key.pem", "ca/issuing.key.pem"] {
            let pem = try String(contentsOfFile: data + "/" + key, encoding: .utf8)
            #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
            let plain = try openssl.run(["pkey", "-in", data + "/" + key, "-passin", "pass:", "-noout"])
            #expect(plain.status != 0, "the key must not open without the passphrase")
            let opened = try openssl.run([
                "pkey", "-in", data + "/" + key, "-passin", "file:" + data + "/passphrase", "-noout", "-text",
            ])
            #expect(opened.status == 0 && opened.stdout.contains("Private-Key"), "\(opened.combined)")
        }
        let again = try keygate.run(["init", "--data-dir", data])
        #expect(again.status != 0 && again.stderr.contains("dataDirectoryExists"))

        var server = try keygate.serve(dataDir: data, log: dir.file("serve.log"))
        let twice = try keygate.run(["serve", "--data-dir", data])
        #expect(twice.status == 1 && twice.stderr.contains("listenFailed"), "\(twice.combined)")

        // Sign a CSR that asks for another name; the certificate carries the one we give.
        try openssl.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", dir.file("device.key")])
        try openssl.run([
            "req", "-new", "-key", dir.file("device.key"), "-subj", "/CN=not-me", "-out", dir.file("device.csr"),
        ])
        let signed = try keygate.run([
            "cert", "sign", "--data-dir", data, "--csr", dir.file("device.csr"), "--subject-cn", "sensor-9", "--out",
            dir.file("chain.pem"),
        ])
        #expect(signed.status == 0, "\(signed.combined)")
        try openssl.run(["x509", "-in", dir.file("chain.pem"), "-out", dir.file("leaf.pem")])
        let subject = try openssl.run(["x509", "-in", dir.file("leaf.pem"), "-noout", "-subject", "-serial"])
        #expect(subject.stdout.contains("CN = sensor-9") || subject.stdout.contains("CN=sensor-9"))
        let serial = subject.stdout.components(separatedBy: "serial=").last!.trimmingCharacters(
            in: .whitespacesAndNewlines
        ).lowercased()
        let verified = try openssl.run([
            "verify", "-CAfile", data + "/ca/root.crt.pem", "-untrusted", data + "/ca/issuing.crt.pem",
            dir.file("chain.pem"),
        ])
        #expect(verified.status == 0, "\(verified.combined)")

        // The HTTPS listener's certificate chains to our root and names 127.0.0.1.
        let health = try curl.run(["-sS", "--cacert", data + "/ca/root.crt.pem", "https://127.0.0.1:\(https)/healthz"])
        #expect(health.stdout.contains("ok"), "\(health.combined)")
        let tls12Only = try curl.run([
            "-sS", "--tls-max", "1.1", "--cacert", data + "/ca/root.crt.pem", "https://127.0.0.1:\(https)/healthz",
        ])
        #expect(tls12Only.status != 0, "TLS 1.1 must be refused")

        let listed = try keygate.run(["cert", "list", "--data-dir", data])
        #expect(listed.stdout.contains(serial))

        func ocspStatus() throws -> String {
            let result = try openssl.run([
                "ocsp", "-issuer", data + "/ca/issuing.crt.pem", "-cert", dir.file("leaf.pem"), "-url",
                "http://127.0.0.1:\(http)/pki/ocsp", "-CAfile", data + "/ca/chain.pem",
            ])
            #expect(result.combined.contains("Response verify OK"), "\(result.combined)")
            return result.stdout
        }
        #expect(try ocspStatus().contains(": good"))

        let revoked = try keygate.run(["cert", "revoke", "--data-dir", data, serial, "--reason", "keyCompromise"])
        #expect(revoked.status == 0, "\(revoked.combined)")
        #expect(try ocspStatus().contains(": revoked"))

        // A wrong token is refused with the stable code.
        let intruder = try keygate.run([
            "ca", "show", "--server", "https://127.0.0.1:\(https)", "--token", "kg_wrong", "--ca-cert",
            data + "/ca/root.crt.pem",
        ])
        #expect(intruder.status == 1 && intruder.stderr.contains("unauthorized"), "\(intruder.combined)")

        // SIGTERM stops it cleanly; a restart loses nothing.
        #expect(server.terminate() == 0, "serve must exit 0 on SIGTERM:\n\(server.output)")
        server = try keygate.serve(dataDir: data, log: dir.file("serve2.log"))
        let shown = try keygate.run(["cert", "show", "--data-dir", data, serial])
        #expect(shown.stdout.contains("revoked") && shown.stdout.contains("keyCompromise"), "\(shown.combined)")
        let fetched = try curl.run(["-sS", "-o", dir.file("crl.der"), "http://127.0.0.1:\(http)/pki/crl"])
        #expect(fetched.status == 0)
        try openssl.run(["crl", "-inform", "DER", "-in", dir.file("crl.der"), "-out", dir.file("crl.pem")])
        let bundle = try dir.write("bundle.pem", try dir.read("data/ca/chain.pem") + (try dir.read("crl.pem")))
        let crlCheck = try openssl.run(["verify", "-crl_check", "-CAfile", bundle, dir.file("leaf.pem")])
        #expect(crlCheck.status != 0 && crlCheck.combined.contains("certificate revoked"), "\(crlCheck.combined)")
        let audit = try keygate.run(["audit", "verify", "--data-dir", data])
        #expect(audit.status == 0 && audit.stdout.contains("intact"))
        let ca = try keygate.run(["ca", "show", "--data-dir", data])
        #expect(ca.stdout.contains("Issuing CA") && ca.stdout.contains("encrypted PKCS#8"), "\(ca.combined)")
        #expect(server.terminate() == 0)
    }
}
