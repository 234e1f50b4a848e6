import Foundation
import KeygateTestSupport
import Testing

/// `keygate init` with both CA keys in a SoftHSM2 token, `serve` finding the PIN, `cert sign`
/// and `ca show`, all through the real binary with its own SoftHSM configuration.
@Suite(.tags(.binary), .fullRunOnly) struct KeyCustodyCommandTests {
    @Test func initWithBothKeysInSoftHSMThenServeSignAndShow() throws {
        guard ExternalTool.available("softhsm2-util"), ExternalTool.available("openssl") else { return }
        let keygate = try KeygateBinary.locate()
        let openssl = try ExternalTool.openssl
        let dir = try TemporaryDirectory("hsm-cli")
        let hsm = try TestSoftHSM.make(in: dir.path, tokens: ["cli-token"])
        let data = dir.file("data")
        let (https, http) = (try freePort(), try freePort())

        let wrongStore = try keygate.run(["init", "--data-dir", data, "--root-key-store", "floppy"])
        #expect(wrongStore.status != 0 && wrongStore.stderr.contains("software, pkcs11 or azure-key-vault"))
        let noToken = try keygate.run(["init", "--data-dir", data, "--root-key-store", "pkcs11"])
        #expect(noToken.status != 0 && noToken.stderr.contains("--pkcs11-token"), "\(noToken.combined)")

        let initialized = try keygate.run(
            [
                "init", "--data-dir", data, "--https-port", "\(https)", "--http-port", "\(http)",
                "--root-key-store", "pkcs11", "--issuing-key-store", "pkcs11", "--pkcs11-module", TestSoftHSM.module,
                "--pkcs11-token", "cli-token", "--pkcs11-pin-file", hsm.pinFile,
            ], environment: hsm.environment)
        #expect(initialized.status == 0, "\(initialized.combined)")
        #expect(initialized.stdout.contains("PKCS#11 token 'cli-token'"), "\(initialized.stdout)")
        let caFiles = try FileManager.default.contentsOfDirectory(atPath: data + "/ca")
        #expect(!caFiles.contains { $0.contains("key") }, "no CA key file: \(caFiles)")

        let server = try keygate.serve(dataDir: data, log: dir.file("serve.log"), environment: hsm.environment)
        defer { _ = server.terminate() }
        try openssl.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", dir.file("device.key")])
        try openssl.run(["req", "-new", "-key", dir.file("device.key"), "-subj", "/CN=x", "-out", dir.file("d.csr")])
        let signed = try keygate.run([
            "cert", "sign", "--data-dir", data, "--csr", dir.file("d.csr"), "--subject-cn", "hsm-device", "--out",
            dir.file("chain.pem"),
        ])
        #expect(signed.status == 0, "\(signed.combined)")
        try openssl.run(["x509", "-in", dir.file("chain.pem"), "-out", dir.file("leaf.pem")])
        let verified = try openssl.run([
            "verify", "-CAfile", data + "/ca/root.crt.pem", "-untrusted", data + "/ca/issuing.crt.pem",
            dir.file("leaf.pem"),
        ])
        #expect(verified.status == 0, "\(verified.combined)")

        let shown = try keygate.run(["ca", "show", "--data-dir", data])
        #expect(shown.status == 0, "\(shown.combined)")
        #expect(shown.stdout.contains("pkcs11: PKCS#11 token 'cli-token'"), "\(shown.stdout)")
        #expect(shown.stdout.contains("key 'keygate-root-ca'") && shown.stdout.contains("key 'keygate-issuing-ca'"))

        // Without the PIN (no file, no environment) serve refuses with a clear error.
        try FileManager.default.removeItem(atPath: hsm.pinFile)
        let noPin = try keygate.run(["serve", "--data-dir", data], environment: hsm.environment)
        #expect(noPin.status != 0 && noPin.stderr.contains("pkcs11PinMissing"), "\(noPin.combined)")
    }
}
