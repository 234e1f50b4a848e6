import SwiftASN1
public import X509

/// Something that holds a CA private key and signs with it.
///
/// The key may live in memory (``SoftwareSigner``), in a PKCS#11 token or in Azure Key Vault;
/// callers only see the public key, the signature algorithm and `sign`. A signer that cannot
/// reach its key throws ``KeygateError/Code-swift.struct/signerUnavailable`` so the caller can
/// answer 503 and retry later.
public protocol CertificateSigner: Sendable {
    /// The public half of the signing key.
    var publicKey: Certificate.PublicKey { get }
    /// The algorithm every signature from this signer uses.
    var signatureAlgorithm: Certificate.SignatureAlgorithm { get }
    /// Where the key lives, for `keygate ca show`.
    var keyLocation: KeyLocation { get }
    /// Signs `message` (hashing it as the signature algorithm requires) and returns the signature
    /// in its X.509 encoding: DER `ECDSA-Sig-Value` for ECDSA, PKCS #1 v1.5 for RSA, raw for Ed25519.
    func sign(_ message: [UInt8]) async throws -> [UInt8]
}

/// Where a CA key is kept.
public enum KeyLocation: Sendable, Hashable, CustomStringConvertible {
    /// An encrypted PKCS #8 file.
    case encryptedFile(path: String)
    /// Memory only (tests and benchmarks).
    case memory
    /// A PKCS #11 token.
    case pkcs11(module: String, token: String, label: String)
    /// An Azure Key Vault key.
    case azureKeyVault(keyID: String)

    /// A human-readable location for `keygate ca show`, such as `software, encrypted PKCS#8 at <path>`.
    public var description: String {
        switch self {
        case .encryptedFile(let path): return "software, encrypted PKCS#8 at \(path)"
        case .memory: return "software, in memory"
        case .pkcs11(let module, let token, let label): return "PKCS#11 token '\(token)' (\(module)), key '\(label)'"
        case .azureKeyVault(let keyID): return "Azure Key Vault key \(keyID)"
        }
    }

    /// The store kind as used on the command line: `software`, `pkcs11`, `azure-key-vault`.
    public var storeName: String {
        switch self {
        case .encryptedFile, .memory: return "software"
        case .pkcs11: return "pkcs11"
        case .azureKeyVault: return "azure-key-vault"
        }
    }
}

extension CertificateSigner {
    /// Signs and wraps the result for swift-certificates.
    public func certificateSignature(for message: [UInt8]) async throws -> Certificate.Signature {
        let bytes = try await sign(message)
        do {
            return try Certificate.Signature(
                signatureAlgorithm: signatureAlgorithm, signatureBytes: .init(bytes: bytes[...]))
        } catch {
            throw KeygateError(.signingFailed, "the signer returned a signature that cannot be parsed: \(error)")
        }
    }
}
