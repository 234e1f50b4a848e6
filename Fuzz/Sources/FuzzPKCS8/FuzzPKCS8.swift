// The private-key readers (KeygatePKI/Keys): `PKCS8.Info`, `EncryptedPrivateKey.decrypt` (the CA key
// files, PBES2) and `SoftwareSigner`, which loads what they return. The input is tried as PEM text,
// and as DER: a PrivateKeyInfo, and an EncryptedPrivateKeyInfo wrapped in an ENCRYPTED PRIVATE KEY PEM.
// The encrypted seeds use the passphrase "fuzz" and one PBKDF2 iteration, so mutations reach AES and
// the decrypted PrivateKeyInfo.
import FuzzSupport
import KeygatePKI
import SwiftASN1
import X509

private let passphrase = "fuzz"
/// Inputs asking for more PBKDF2 iterations are not decrypted: the cost is by design (the reader
/// allows up to 10,000,000) and would only produce timeouts.
private let maximumIterations = 2048

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let text = String(decoding: bytes, as: UTF8.self)
    if text.contains("-----BEGIN") {
        if let document = try? PEMDocument(pemString: text) {
            if cheapToDecrypt(document.derBytes) { decrypt(text) }
        } else {
            decrypt(text)  // refused before PBKDF2
        }
        if let key = try? Certificate.PrivateKey(pemEncoded: text) { load(key) }
    } else {
        loadDER(bytes)
        if cheapToDecrypt(bytes) {
            decrypt(PEMDocument(type: EncryptedPrivateKey.pemLabel, derBytes: bytes).pemString)
        }
    }
    return 0
}

private func decrypt(_ pem: String) {
    guard let pkcs8 = try? EncryptedPrivateKey.decrypt(pem: pem, passphrase: passphrase) else { return }
    fuzzCheck((try? PKCS8.Info(derBytes: pkcs8)) != nil, "a decrypted key is not a PrivateKeyInfo")
    loadDER(pkcs8)
}

/// What KeyCustody does with a decrypted CA key.
private func loadDER(_ der: [UInt8]) {
    _ = try? PKCS8.Info(derBytes: der)
    if let key = try? Certificate.PrivateKey(derBytes: der) { load(key) }
}

private func load(_ key: Certificate.PrivateKey) {
    guard let signer = try? SoftwareSigner(privateKey: key) else { return }
    _ = signer.signatureAlgorithm
    _ = signer.publicKey.keygateDescription
}

/// Whether every INTEGER in the DER (the PBKDF2 iteration count among them) is at most `maximumIterations`.
private func cheapToDecrypt(_ der: [UInt8]) -> Bool {
    guard let root = try? DER.parse(der) else { return true }  // decrypt throws before PBKDF2
    func cheap(_ node: ASN1Node) -> Bool {
        switch node.content {
        case .constructed(let children):
            return children.allSatisfy(cheap)
        case .primitive:
            guard node.identifier == .integer else { return true }
            guard let value = try? Int(derEncoded: node) else { return false }
            return value <= maximumIterations
        }
    }
    return cheap(root)
}
