import Crypto
import CryptoExtras
import Foundation
import SwiftASN1

/// Password-protected PKCS #8 keys (PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC), the
/// `ENCRYPTED PRIVATE KEY` PEM that `openssl pkey -passin` reads.
///
/// RFC 5958 §3 and RFC 8018 §A.2, §A.4, §B.2.5:
/// ```
/// EncryptedPrivateKeyInfo ::= SEQUENCE {
///     encryptionAlgorithm  AlgorithmIdentifier {{ PBES2 }},
///     encryptedData        OCTET STRING }
///
/// PBES2-params ::= SEQUENCE {
///     keyDerivationFunc  AlgorithmIdentifier {{ PBKDF2 }},
///     encryptionScheme   AlgorithmIdentifier {{ aes256-CBC-PAD }} }   -- parameters: IV OCTET STRING (16)
///
/// PBKDF2-params ::= SEQUENCE {
///     salt            OCTET STRING,
///     iterationCount  INTEGER (1..MAX),
///     keyLength       INTEGER (1..MAX) OPTIONAL,
///     prf             AlgorithmIdentifier DEFAULT algid-hmacWithSHA1 }
/// ```
public enum EncryptedPrivateKey {
    /// The iteration count for new files (OWASP's guidance for PBKDF2-HMAC-SHA256).
    public static let defaultIterations = 600_000
    /// The PEM label Keygate writes and ``decrypt(pem:passphrase:)`` requires.
    public static let pemLabel = "ENCRYPTED PRIVATE KEY"

    /// Encrypts a PKCS #8 `PrivateKeyInfo` and returns the PEM document.
    public static func encrypt(
        pkcs8 plaintext: [UInt8],
        passphrase: String,
        iterations: Int = defaultIterations
    ) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var ivBytes = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<16 {
            salt[i] = rng.next()
            ivBytes[i] = rng.next()
        }
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(passphrase.utf8), salt: salt, using: .sha256, outputByteCount: 32,
            unsafeUncheckedRounds: iterations
        )
        let ciphertext = try AES._CBC.encrypt(plaintext, using: key, iv: AES._CBC.IV(ivBytes: ivBytes))

        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(ASN1ObjectIdentifier.Keygate.pbes2)
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(ASN1ObjectIdentifier.Keygate.pbkdf2)
                        try coder.appendConstructedNode(identifier: .sequence) { coder in
                            try coder.serialize(ASN1OctetString(contentBytes: salt[...]))
                            try coder.serialize(iterations)
                            try appendAlgorithmIdentifier(.Keygate.hmacWithSHA256, nullParameters: true, into: &coder)
                        }
                    }
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(ASN1ObjectIdentifier.Keygate.aes256CBC)
                        try coder.serialize(ASN1OctetString(contentBytes: ivBytes[...]))
                    }
                }
            }
            try coder.serialize(ASN1OctetString(contentBytes: Array(ciphertext)[...]))
        }
        return PEMDocument(type: pemLabel, derBytes: coder.serializedBytes).pemString
    }

    /// Decrypts an `ENCRYPTED PRIVATE KEY` PEM and returns the PKCS #8 `PrivateKeyInfo` DER.
    ///
    /// Accepts PBKDF2 with HMAC-SHA1/256/384/512 and AES-128/192/256-CBC, which covers what
    /// `openssl pkcs8 -topk8 -v2 aes256` and friends write.
    public static func decrypt(pem: String, passphrase: String) throws -> [UInt8] {
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pem)
        } catch {
            throw KeygateError(.malformedPEM, "the key file is not PEM")
        }
        guard document.discriminator == pemLabel else {
            throw KeygateError(.malformedPEM, "expected an \(pemLabel) PEM, found \(document.discriminator)")
        }
        let parameters: Parameters
        let ciphertext: [UInt8]
        do {
            (parameters, ciphertext) = try parse(document.derBytes)
        } catch let error as KeygateError {
            throw error
        } catch {
            throw KeygateError(.malformedDER, "the encrypted key is not a valid EncryptedPrivateKeyInfo: \(error)")
        }
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(passphrase.utf8), salt: parameters.salt, using: parameters.prf,
            outputByteCount: parameters.keyLength, unsafeUncheckedRounds: parameters.iterations
        )
        let plaintext: Data
        do {
            plaintext = try AES._CBC.decrypt(ciphertext, using: key, iv: AES._CBC.IV(ivBytes: parameters.iv))
            _ = try PKCS8.Info(derBytes: Array(plaintext))
        } catch {
            throw KeygateError(.wrongPassphrase, "the passphrase does not decrypt the CA key")
        }
        return Array(plaintext)
    }

    private struct Parameters {
        var salt: [UInt8]
        var iterations: Int
        var keyLength: Int
        var prf: KDF.Insecure.PBKDF2.HashFunction
        var iv: [UInt8]
    }

    private static func parse(_ der: [UInt8]) throws -> (Parameters, [UInt8]) {
        let root = try DER.parse(der)
        return try DER.sequence(root, identifier: .sequence) { nodes in
            guard let algorithm = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "no algorithm") }
            let (oid, pbes2Node) = try parseAlgorithmIdentifier(algorithm)
            guard oid == .Keygate.pbes2, let pbes2Node else {
                throw KeygateError(.unsupportedKeyEncryption, "only PBES2-encrypted keys are supported")
            }
            let parameters = try DER.sequence(pbes2Node, identifier: .sequence) { nodes -> Parameters in
                guard let kdfNode = nodes.next(), let encNode = nodes.next() else {
                    throw ASN1Error.invalidASN1Object(reason: "incomplete PBES2-params")
                }
                let (kdf, kdfParameters) = try parseAlgorithmIdentifier(kdfNode)
                guard kdf == .Keygate.pbkdf2, let kdfParameters else {
                    throw KeygateError(.unsupportedKeyEncryption, "only PBKDF2 key derivation is supported")
                }
                let (enc, ivNode) = try parseAlgorithmIdentifier(encNode)
                let keyLength: Int
                switch enc {
                case .Keygate.aes128CBC: keyLength = 16
                case .Keygate.aes192CBC: keyLength = 24
                case .Keygate.aes256CBC: keyLength = 32
                default: throw KeygateError(.unsupportedKeyEncryption, "only AES-CBC encryption is supported")
                }
                guard let ivNode else { throw ASN1Error.invalidASN1Object(reason: "missing IV") }
                let iv = Array(try ASN1OctetString(derEncoded: ivNode).bytes)
                guard iv.count == 16 else {
                    throw KeygateError(.unsupportedKeyEncryption, "AES-CBC needs a 16-byte IV")
                }
                return try DER.sequence(kdfParameters, identifier: .sequence) { nodes in
                    let salt = Array(try ASN1OctetString(derEncoded: &nodes).bytes)
                    let iterations = try Int(derEncoded: &nodes)
                    guard iterations > 0, iterations <= 10_000_000 else {
                        throw KeygateError(
                            .unsupportedKeyEncryption, "implausible PBKDF2 iteration count \(iterations)")
                    }
                    var prf = KDF.Insecure.PBKDF2.HashFunction.insecureSHA1
                    while let node = nodes.next() {
                        if node.identifier == .integer { continue }  // keyLength, implied by the cipher
                        let (prfOID, _) = try parseAlgorithmIdentifier(node)
                        switch prfOID {
                        case .Keygate.hmacWithSHA1: prf = .insecureSHA1
                        case .Keygate.hmacWithSHA256: prf = .sha256
                        case .Keygate.hmacWithSHA384: prf = .sha384
                        case .Keygate.hmacWithSHA512: prf = .sha512
                        default: throw KeygateError(.unsupportedKeyEncryption, "unsupported PBKDF2 PRF \(prfOID)")
                        }
                    }
                    return Parameters(salt: salt, iterations: iterations, keyLength: keyLength, prf: prf, iv: iv)
                }
            }
            let data = try ASN1OctetString(derEncoded: &nodes)
            return (parameters, Array(data.bytes))
        }
    }
}
