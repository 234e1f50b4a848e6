import Crypto
import Foundation
import KeygateDomain
import KeygatePKCS11
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Testing
import X509

/// CA keys in SoftHSM2 through our PKCS #11 signer. PKCS #11 state is process-wide, so these
/// tests run one at a time on the shared SoftHSM configuration.
@Suite(.serialized, .tags(.outsideTool), .fullRunOnly) struct PKCS11SignerTests {
    func token(_ label: String = "keygate-test", pin: String = TestSoftHSM.userPIN) throws -> PKCS11Token {
        PKCS11Token(module: try PKCS11Module.load(TestSoftHSM.module), label: label, pin: pin)
    }

    @Test func bothCAsInSoftHSMIssueCertificatesOpenSSLVerifiesAndTheKeysCannotLeave() async throws {
        guard TestSoftHSM.available, let hsm = TestSoftHSM.shared else { return }
        let run = UUID().uuidString.prefix(8)
        let kg = try await TestKeygate.make {
            $0.rootKeyStore = .pkcs11(
                .init(
                    module: TestSoftHSM.module, tokenLabel: "keygate-test", keyLabel: "root-\(run)",
                    pin: TestSoftHSM.userPIN, pinFile: hsm.pinFile))
            $0.issuingKeyStore = .pkcs11(
                .init(
                    module: TestSoftHSM.module, tokenLabel: "keygate-test", keyLabel: "issuing-\(run)",
                    pin: TestSoftHSM.userPIN, pinFile: hsm.pinFile))
        }
        let configuration = kg.server.configuration
        #expect(configuration.root.keyStore == "pkcs11" && configuration.issuing.keyStore == "pkcs11")
        #expect(configuration.issuing.pkcs11?.pinFile == hsm.pinFile, "serve finds the PIN through the recorded file")
        #expect(!(try kg.directory.read(DataDirectory.configurationFile)).contains(TestSoftHSM.userPIN))

        // No CA key file in the data folder: nothing but the TLS key holds a private key.
        let files = FileManager.default.enumerator(atPath: kg.directory.url.path)?.allObjects as? [String] ?? []
        for file in files where !file.hasPrefix("tls/") {
            let text = (try? String(contentsOfFile: kg.directory.path(file), encoding: .utf8)) ?? ""
            #expect(!text.contains("PRIVATE KEY"), "\(file) holds a private key")
        }
        #expect(!FileManager.default.fileExists(atPath: kg.directory.path("ca/root.key.pem")))
        #expect(!FileManager.default.fileExists(atPath: kg.directory.path("ca/issuing.key.pem")))

        // Both keys are sensitive, never extractable token objects, as the token reports them.
        for label in ["root-\(run)", "issuing-\(run)"] {
            let signer = try await PKCS11Signer.existing(token: try token(), label: label)
            let protection = try await signer.keyProtection()
            #expect(protection.token && protection.private)
            #expect(protection.sensitive && protection.alwaysSensitive, "\(label) must be sensitive")
            #expect(!protection.extractable && protection.neverExtractable, "\(label) must not be extractable")
        }

        // Concurrent issuance through the session pool; every certificate verifies with openssl.
        let service = kg.server.services.certificates
        let issued = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<24 {
                group.addTask {
                    try await service.issue(
                        csr: Array(try TestCSR.make().pem.utf8), profile: .device,
                        identity: .init(commonName: "hsm-\(index)"), actor: "test"
                    ).record.pem
                }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(issued.count == 24)
        guard ExternalTool.available("openssl") else { return }
        for (index, pem) in issued.enumerated() {
            let leaf = try kg.folder.write("leaf-\(index).pem", pem)
            let verified = try await ExternalTool.openssl.run([
                "verify", "-CAfile", kg.rootPath, "-untrusted", kg.issuingPath, leaf,
            ])
            #expect(verified.status == 0, "\(verified.combined)")
        }
        // The root in the token signed the issuing CA: its certificate verifies against the root.
        let issuingVerified = try await ExternalTool.openssl.run(["verify", "-CAfile", kg.rootPath, kg.issuingPath])
        #expect(issuingVerified.status == 0, "\(issuingVerified.combined)")
    }

    @Test func anHSMThatIsGoneAnswers503WithRetryAfterAndIssuanceRecoversByItself() async throws {
        guard TestSoftHSM.available, let hsm = TestSoftHSM.shared, ExternalTool.available("curl") else { return }
        let run = UUID().uuidString.prefix(8)
        let kg = try await TestKeygate.make {
            $0.issuingKeyStore = .pkcs11(
                .init(
                    module: TestSoftHSM.module, tokenLabel: "keygate-test", keyLabel: "gone-\(run)",
                    pin: TestSoftHSM.userPIN, pinFile: hsm.pinFile))
        }
        let server = try await kg.start()
        defer { Task { await server.stop() } }
        let curl = try ExternalTool.require("curl")
        func issue(_ name: String) async throws -> (status: String, headers: String) {
            let body = try JSONSerialization.data(withJSONObject: [
                "csr": try TestCSR.make().pem, "subject": ["commonName": name],
            ])
            let headers = kg.folder.file("headers-\(name)")
            let result = try await curl.run(
                [
                    "-sS", "-o", "/dev/null", "-D", headers, "-w", "%{http_code}", "--cacert", kg.rootPath,
                    "-H", "Authorization: Bearer \(kg.adminToken)", "-H", "Content-Type: application/json",
                    "--data-binary", "@-", server.httpsURL + "/admin/v1/certificates",
                ], input: body)
            return (result.stdout, (try? String(contentsOfFile: headers, encoding: .utf8)) ?? "")
        }
        #expect(try await issue("before").status == "201")
        let before = try await kg.server.store.certificateCounts()

        // The HSM goes away: the module is reset and the token is gone.
        let module = try PKCS11Module.load(TestSoftHSM.module)
        let away = hsm.tokenDirectory + ".away"
        module.finalize()
        try FileManager.default.moveItem(atPath: hsm.tokenDirectory, toPath: away)
        var restored = false
        defer { if !restored { try? FileManager.default.moveItem(atPath: away, toPath: hsm.tokenDirectory) } }
        let down = try await issue("during")
        #expect(down.status == "503", "\(down)")
        #expect(down.headers.lowercased().contains("retry-after:"), "\(down.headers)")
        #expect(try await kg.server.store.certificateCounts() == before, "nothing recorded without a signature")

        // It comes back: the next request signs without a restart.
        try FileManager.default.moveItem(atPath: away, toPath: hsm.tokenDirectory)
        restored = true
        #expect(try await issue("after").status == "201")
    }

    @Test func keysAreFoundByLabelAndMistakesGetClearErrors() async throws {
        guard TestSoftHSM.available else { return }
        let label = "label-\(UUID().uuidString.prefix(8))"
        let made = try await PKCS11Signer.generate(token: try token(), label: label, algorithm: .p384)
        let found = try await PKCS11Signer.existing(token: try token(), label: label)
        #expect(found.publicKey == made.publicKey && found.algorithm == .p384)
        #expect(found.keyLocation.storeName == "pkcs11")

        // A P-384 signature from the token verifies with the public key it reported.
        let message = Array("to be signed".utf8)
        let signature = try P384.Signing.ECDSASignature(derRepresentation: try await found.sign(message))
        let publicKey = try #require(P384.Signing.PublicKey(found.publicKey))
        #expect(publicKey.isValidSignature(signature, for: message))

        #expect(
            await errorCode { _ = try await PKCS11Signer.generate(token: try token(), label: label, algorithm: .p256) }
                == "conflict")
        #expect(
            await errorCode { _ = try await PKCS11Signer.existing(token: try token(), label: "no-such-key") }
                == "pkcs11KeyNotFound")
        #expect(
            await errorCode {
                _ = try await PKCS11Signer.generate(token: try token(), label: "rsa", algorithm: .rsa3072)
            } == "keyAlgorithmNotAllowed")
        #expect(
            await errorCode {
                _ = try await PKCS11Signer.existing(token: try token("keygate-other", pin: "0000"), label: label)
            } == "pkcs11PinIncorrect")
        #expect(
            await errorCode { _ = try await PKCS11Signer.existing(token: try token("no-such-token"), label: label) }
                == "pkcs11TokenNotFound")
        #expect(await errorCode { _ = try PKCS11Module.load("/nonexistent/libpkcs11.so") } == "pkcs11ModuleUnusable")
    }
}
