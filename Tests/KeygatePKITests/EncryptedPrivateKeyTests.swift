import Testing
import X509
import Foundation
@testable import KeygatePKI

@Suite struct EncryptedPrivateKeyTests {
    @Test(arguments: KeyAlgorithm.allCases)
    func roundTrip(_ algorithm: KeyAlgorithm) throws {
        let signer = try SoftwareSigner.generate(algorithm)
        let pkcs8 = try signer.privateKey.pkcs8DER()
        let pem = try EncryptedPrivateKey.encrypt(pkcs8: pkcs8, passphrase: "correct horse", iterations: 1000)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        let decrypted = try EncryptedPrivateKey.decrypt(pem: pem, passphrase: "correct horse")
        #expect(decrypted == pkcs8)
        let reloaded = try SoftwareSigner(privateKey: Certificate.PrivateKey(derBytes: decrypted))
        #expect(reloaded.publicKey == signer.publicKey)
    }

    @Test func wrongPassphraseIsRefused() throws {
        let signer = try SoftwareSigner.generate(.p256)
        let pem = try EncryptedPrivateKey.encrypt(pkcs8: try signer.privateKey.pkcs8DER(), passphrase: "right one", iterations: 1000)
        #expect(throws: KeygateError.self) { try EncryptedPrivateKey.decrypt(pem: pem, passphrase: "wrong one") }
    }
}
