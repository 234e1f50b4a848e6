import AsyncHTTPClient
import Foundation
import KeygateAzure
import KeygateDomain
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Logging
import NIOSSL
import Testing
import X509

/// The issuing CA's key in the sandbox's Key Vault: certificates it signs verify with openssl.
@Suite struct KeyVaultSignerTests {
    @Test(.tags(.outsideTool), .fullRunOnly) func anIssuingCAInKeyVaultSignsCertificatesOpenSSLVerifies() async throws {
        let folder = try TemporaryDirectory("kv-signer")
        let sandbox = try await TestSandbox.start(in: folder)
        let connection = sandbox.connection
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(connection.caCertificate)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        defer {
            Task {
                try? await http.shutdown()
                await sandbox.stop()
            }
        }
        let kv = connection.keyVault
        let tokens = AADTokenProvider(
            tokenEndpoint: kv.tokenEndpoint, clientID: kv.clientId, clientSecret: kv.clientSecret, scope: kv.scope,
            http: http)
        let signer = try await AzureKeyVaultSigner.create(
            vaultURL: kv.vaultURL, name: "issuing-ca", tokens: tokens, http: http)
        #expect(signer.keyLocation.storeName == "azure-key-vault")
        let reloaded = try await AzureKeyVaultSigner.existing(keyURL: signer.keyID, tokens: tokens, http: http)
        #expect(reloaded.publicKey == signer.publicKey)

        let root = try await CertificateAuthority.makeRoot(
            name: "Test Root", signer: try SoftwareSigner.generate(.p256))
        let issuing = try await root.makeSubordinate(name: "Vault Issuing CA", signer: signer)
        let device = try await issuing.issue(
            csr: try CSRPolicy().check(try TestCSR.make().der), profile: .device,
            identity: .init(commonName: "sensor-kv"),
            revocation: nil)
        guard ExternalTool.available("openssl") else { return }
        let rootPath = try folder.write("root.pem", try root.certificate.pemString)
        let issuingPath = try folder.write("issuing.pem", try issuing.certificate.pemString)
        let devicePath = try folder.write("device.pem", try device.pemString)
        let verified = try await ExternalTool.openssl.run([
            "verify", "-CAfile", rootPath, "-untrusted", issuingPath, devicePath,
        ])
        #expect(verified.status == 0, "\(verified.combined)")

        // A wrong client secret is a refusal, not a retryable outage.
        let wrong = AADTokenProvider(
            tokenEndpoint: kv.tokenEndpoint, clientID: kv.clientId, clientSecret: "nope", scope: kv.scope, http: http)
        let code = await errorCode {
            _ = try await AzureKeyVaultSigner.create(vaultURL: kv.vaultURL, name: "x", tokens: wrong, http: http)
        }
        #expect(code == "signingFailed")
    }
}

/// `keygate init` with the issuing CA's key in Key Vault, then a server that issues through it.
@Suite struct KeyVaultCustodyTests {
    @Test(.tags(.outsideTool), .fullRunOnly) func aServerWhoseIssuingKeyIsInKeyVaultIssuesVerifiableCertificates() async throws {
        let folder = try TemporaryDirectory("kv-custody")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let connection = sandbox.connection
        let kv = connection.keyVault

        // Both CAs in the vault: the root signs the issuing CA there, the issuing CA signs devices there.
        let vault = KeygateInitializer.AzureKeyVaultSettings(
            vaultURL: kv.vaultURL, tokenEndpoint: kv.tokenEndpoint, clientID: kv.clientId,
            clientSecret: kv.clientSecret, caCertificate: connection.caCertificate)
        let kg = try await TestKeygate.make {
            $0.rootKeyStore = .azureKeyVault(vault)
            $0.issuingKeyStore = .azureKeyVault(vault)
        }
        let configuration = kg.server.configuration
        #expect(configuration.root.keyStore == "azure-key-vault" && configuration.root.keyFile == nil)
        #expect(configuration.root.azureKeyVault?.keyID.contains("/keys/keygate-root-ca/") == true)
        #expect(!FileManager.default.fileExists(atPath: kg.directory.path("ca/root.key.pem")), "no root key file")
        #expect(configuration.issuing.keyStore == "azure-key-vault")
        #expect(configuration.issuing.keyFile == nil)
        #expect(!FileManager.default.fileExists(atPath: kg.directory.path("ca/issuing.key.pem")), "no issuing key file")
        let keygateJSON = try kg.directory.read(DataDirectory.configurationFile)
        #expect(!keygateJSON.contains(kv.clientSecret), "the client secret is stored sealed")
        #expect(kg.server.services.certificates.authority.signer.keyLocation.storeName == "azure-key-vault")

        let issued = try await kg.server.services.certificates.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "vault-signed"),
            actor: "test")
        guard ExternalTool.available("openssl") else { return }
        let leaf = try folder.write("leaf.pem", issued.record.pem)
        let verified = try await ExternalTool.openssl.run([
            "verify", "-CAfile", kg.rootPath, "-untrusted", kg.issuingPath, leaf,
        ])
        #expect(verified.status == 0, "\(verified.combined)")
        // The CRL is signed in the vault too.
        let crl = try await kg.server.services.certificates.crl.current()
        let crlPath = try folder.write("crl.der", Data(crl.der))
        let checked = try await ExternalTool.openssl.run([
            "crl", "-inform", "DER", "-in", crlPath, "-noout", "-CAfile", kg.chainPath,
        ])
        #expect(checked.combined.contains("verify OK"), "\(checked.combined)")
    }
}

/// The vault goes down and comes back (sandbox control endpoint): issuance answers 503 with
/// Retry-After meanwhile, records nothing, and recovers without a restart.
@Suite struct KeyVaultOutageTests {
    @Test(.tags(.outsideTool), .fullRunOnly) func issuanceRecoversAfterTheVaultWasDown() async throws {
        let folder = try TemporaryDirectory("kv-outage")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let connection = sandbox.connection
        let kv = connection.keyVault
        let kg = try await TestKeygate.make {
            $0.issuingKeyStore = .azureKeyVault(
                .init(
                    vaultURL: kv.vaultURL, tokenEndpoint: kv.tokenEndpoint, clientID: kv.clientId,
                    clientSecret: kv.clientSecret, caCertificate: connection.caCertificate))
        }
        let service = kg.server.services.certificates
        func issue(_ name: String) async throws -> String {
            try await service.issue(
                csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: name),
                actor: "test"
            ).record.pem
        }
        _ = try await issue("before")
        let before = try await service.certificateCounts()

        let control = SandboxControlClient(connection: connection)
        try await control.set(.init(down: true, retryAfterSeconds: 1), surface: .keyVault)
        do {
            _ = try await issue("during")
            Issue.record("issuance must fail while the vault is down")
        } catch let error as KeygateError {
            #expect(error.code == .signerUnavailable, "\(error)")
            #expect(error.retryAfter != nil)
        }
        #expect(try await service.certificateCounts() == before, "nothing recorded without a signature")
        let report = try await control.report()
        #expect((report.injected[.keyVault] ?? 0) >= 1, "the signer retried against the down vault")

        try await control.set(.init(down: false), surface: .keyVault)
        let pem = try await issue("after")
        guard ExternalTool.available("openssl") else { return }
        let leaf = try folder.write("after.pem", pem)
        let verified = try await ExternalTool.openssl.run([
            "verify", "-CAfile", kg.rootPath, "-untrusted", kg.issuingPath, leaf,
        ])
        #expect(verified.status == 0, "\(verified.combined)")
    }
}
