import Crypto
import CryptoExtras
import Foundation
import SwiftASN1
public import X509

/// A signer whose key is in this process's memory (loaded from an encrypted file).
public struct SoftwareSigner: CertificateSigner {
    /// The private key, held in memory.
    public let privateKey: Certificate.PrivateKey
    /// The key's algorithm; every RSA key (2048 bits or more) reports `rsa3072`.
    public let algorithm: KeyAlgorithm
    /// Where the key was loaded from; `.memory` for generated keys.
    public let keyLocation: KeyLocation
    private let backing: Backing

    private enum Backing: Sendable {
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    /// Wraps a key; throws `unsupportedKey` for algorithms Keygate does not sign with.
    public init(privateKey: Certificate.PrivateKey, location: KeyLocation = .memory) throws {
        self.privateKey = privateKey
        self.keyLocation = location
        let der = try privateKey.pkcs8DER()
        let pkcs8 = try PKCS8.Info(derBytes: der)
        switch pkcs8.algorithm {
        case .Keygate.ecPublicKey where pkcs8.curve == .Keygate.prime256v1:
            backing = .p256(try P256.Signing.PrivateKey(derRepresentation: der))
            algorithm = .p256
        case .Keygate.ecPublicKey where pkcs8.curve == .Keygate.secp384r1:
            backing = .p384(try P384.Signing.PrivateKey(derRepresentation: der))
            algorithm = .p384
        case .Keygate.rsaEncryption:
            let key = try _RSA.Signing.PrivateKey(derRepresentation: pkcs8.privateKey)
            guard key.keySizeInBits >= 2048 else {
                throw KeygateError(.keyTooWeak, "RSA CA keys must be at least 2048 bits")
            }
            backing = .rsa(key)
            algorithm = .rsa3072
        case .Keygate.ed25519:
            backing = .ed25519(
                try Curve25519.Signing.PrivateKey(rawRepresentation: PKCS8.ed25519Seed(pkcs8.privateKey)))
            algorithm = .ed25519
        default:
            throw KeygateError(.unsupportedKey, "Keygate signs with ECDSA P-256/P-384, RSA or Ed25519 keys")
        }
    }

    /// Creates a signer with a fresh key.
    public static func generate(_ algorithm: KeyAlgorithm) throws -> SoftwareSigner {
        try SoftwareSigner(privateKey: algorithm.generatePrivateKey())
    }

    /// The public half of ``privateKey``.
    public var publicKey: Certificate.PublicKey { privateKey.publicKey }

    /// ECDSA with SHA-256 (P-256) or SHA-384 (P-384), SHA-256 with RSA PKCS #1 v1.5, or Ed25519.
    public var signatureAlgorithm: Certificate.SignatureAlgorithm {
        switch backing {
        case .p256: return .ecdsaWithSHA256
        case .p384: return .ecdsaWithSHA384
        case .rsa: return .sha256WithRSAEncryption
        case .ed25519: return .ed25519
        }
    }

    /// Signs at once, without suspending; see ``signNow(_:)``.
    public func sign(_ message: [UInt8]) async throws -> [UInt8] {
        try signNow(message)
    }

    /// Signs without suspending; software keys never wait.
    public func signNow(_ message: [UInt8]) throws -> [UInt8] {
        switch backing {
        case .p256(let key): return Array(try key.signature(for: message).derRepresentation)
        case .p384(let key): return Array(try key.signature(for: message).derRepresentation)
        case .rsa(let key): return Array(try key.signature(for: message, padding: .insecurePKCS1v1_5).rawRepresentation)
        case .ed25519(let key): return Array(try key.signature(for: message))
        }
    }
}

extension Certificate.PrivateKey {
    /// The key as PKCS #8 `PrivateKeyInfo` DER, whatever its algorithm.
    public func pkcs8DER() throws -> [UInt8] {
        let pem = try serializeAsPEM()
        switch pem.discriminator {
        case "PRIVATE KEY":
            return pem.derBytes
        case "RSA PRIVATE KEY":
            return Array(try _RSA.Signing.PrivateKey(derRepresentation: pem.derBytes).pkcs8DERRepresentation)
        case "EC PRIVATE KEY":
            throw KeygateError(.unsupportedKey, "SEC1 keys must be converted to PKCS #8")
        default:
            throw KeygateError(.unsupportedKey, "cannot export a \(pem.discriminator) as PKCS #8")
        }
    }
}
