import Crypto
import CryptoExtras
import Foundation
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Logging
import Testing

/// Secrets sealed with the CA passphrase use a slow KDF (PBKDF2, as the CA key files do), and
/// values sealed by the older HKDF scheme are sealed again when the server starts.
@Suite struct SecretBoxTests {
    /// A value as the v1 scheme wrote it: HKDF-SHA256 of the passphrase, AES-256-GCM.
    func legacySeal(_ secret: String, passphrase: String) throws -> String {
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array(passphrase.utf8)), salt: Array("keygate-secrets-v1".utf8),
            info: Array("secret-box".utf8), outputByteCount: 32)
        return "v1:" + (try AES.GCM.seal(Array(secret.utf8), using: key).combined!).base64EncodedString()
    }

    @Test func valuesAreSealedWithPBKDF2AndASalt() throws {
        let box = SecretBox(passphrase: "correct horse battery")
        let sealed = try box.seal("group-key-material")
        #expect(try box.open(sealed) == "group-key-material")
        // Opened independently: PBKDF2-HMAC-SHA256 with 600,000 rounds over the value's own salt.
        let parts = sealed.split(separator: ":")
        #expect(parts.count == 3 && parts[0] == "v2")
        let salt = try #require(Data(base64Encoded: String(parts[1])))
        #expect(salt.count == 16)
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array("correct horse battery".utf8), salt: salt, using: .sha256, outputByteCount: 32,
            unsafeUncheckedRounds: 600_000)
        let box2 = try AES.GCM.SealedBox(combined: try #require(Data(base64Encoded: String(parts[2]))))
        #expect(String(decoding: try AES.GCM.open(box2, using: key), as: UTF8.self) == "group-key-material")
        // Another passphrase, or a damaged value, does not open.
        #expect(throws: KeygateError.self) { try SecretBox(passphrase: "another passphrase").open(sealed) }
        #expect(throws: KeygateError.self) { try box.open(String(sealed.dropLast(4)) + "AAA=") }
        // v1 values still open and are the only ones that need sealing again.
        let old = try legacySeal("older", passphrase: "correct horse battery")
        #expect(try box.open(old) == "older")
        #expect(SecretBox.needsResealing(old) && !SecretBox.needsResealing(sealed))
    }

    @Test func theServerSealsOlderValuesAgainWhenItStarts() async throws {
        let kg = try await TestKeygate.make()
        let groupKey = SymmetricKeyAttestation.generateGroupKey()
        try await kg.store.createGroup(
            Group(
                name: "meters",
                policy: .init(
                    attestationMethods: ["symmetric-key"],
                    sealedGroupKey: try legacySeal(groupKey, passphrase: kg.passphrase))),
            audit: .init(actor: "t", action: "group.created", subject: "meters"))
        let restarted = try await KeygateServer.load(
            directory: kg.directory, passphrase: kg.passphrase, logger: Logger(label: "t"))
        let sealed = try #require(try await restarted.store.group(named: "meters")?.policy.sealedGroupKey)
        #expect(sealed.hasPrefix("v2:"))
        #expect(try kg.secrets.open(sealed) == groupKey)
        let events = try await restarted.store.auditEvents(subject: "meters", since: nil, limit: 10).map(\.action)
        #expect(events == ["group.created", "secrets.resealed"])
        #expect(try await restarted.services.audit.verify().problem == nil)
    }
}
