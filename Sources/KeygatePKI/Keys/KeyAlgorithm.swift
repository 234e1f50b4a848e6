import Crypto
import CryptoExtras
import Foundation
public import X509

/// The key algorithms Keygate creates keys with and accepts in CSRs.
public enum KeyAlgorithm: String, CaseIterable, Codable, Sendable {
    case p256 = "ecdsa-p256"
    case p384 = "ecdsa-p384"
    case rsa3072 = "rsa-3072"
    case ed25519 = "ed25519"

    /// Accepts the canonical names and common aliases (`p256`, `P-256`, `rsa3072`...).
    public init?(flag: String) {
        switch flag.lowercased().replacingOccurrences(of: "_", with: "-") {
        case "ecdsa-p256", "p256", "p-256", "ec-p256", "prime256v1", "secp256r1": self = .p256
        case "ecdsa-p384", "p384", "p-384", "ec-p384", "secp384r1": self = .p384
        case "rsa-3072", "rsa3072", "rsa": self = .rsa3072
        case "ed25519": self = .ed25519
        default: return nil
        }
    }

    /// The algorithm of a public key, or `nil` for a key Keygate does not issue for.
    public init?(publicKey: Certificate.PublicKey) {
        if P256.Signing.PublicKey(publicKey) != nil {
            self = .p256
        } else if P384.Signing.PublicKey(publicKey) != nil {
            self = .p384
        } else if let rsa = _RSA.Signing.PublicKey(publicKey), rsa.keySizeInBits >= 3072 {
            self = .rsa3072
        } else if Curve25519.Signing.PublicKey(publicKey) != nil {
            self = .ed25519
        } else {
            return nil
        }
    }

    /// Creates a new software private key of this algorithm.
    public func generatePrivateKey() throws -> Certificate.PrivateKey {
        switch self {
        case .p256: return Certificate.PrivateKey(P256.Signing.PrivateKey())
        case .p384: return Certificate.PrivateKey(P384.Signing.PrivateKey())
        case .rsa3072: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits3072))
        case .ed25519: return Certificate.PrivateKey(Curve25519.Signing.PrivateKey())
        }
    }

    /// The signature algorithm a CA key of this algorithm signs with.
    public var signatureAlgorithm: Certificate.SignatureAlgorithm {
        switch self {
        case .p256: return .ecdsaWithSHA256
        case .p384: return .ecdsaWithSHA384
        case .rsa3072: return .sha256WithRSAEncryption
        case .ed25519: return .ed25519
        }
    }
}
