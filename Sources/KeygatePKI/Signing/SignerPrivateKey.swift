public import Foundation
public import SwiftASN1
public import X509

/// Adapts a ``CertificateSigner`` to swift-certificates' `CustomPrivateKey`, so that
/// `Certificate(…, issuerAsyncPrivateKey:)` signs through whatever holds the key.
public struct SignerPrivateKey: CustomPrivateKey {
    /// The signer every signature is delegated to.
    public let signer: any CertificateSigner
    private let identity: String

    /// Wraps `signer`; two wrappers are equal when key location and public key match.
    public init(_ signer: any CertificateSigner) {
        self.signer = signer
        self.identity = signer.keyLocation.description + "|" + String(describing: signer.publicKey)
    }

    /// The signer's public key.
    public var publicKey: Certificate.PublicKey { signer.publicKey }
    /// The signer's signature algorithm, the only one it supports.
    public var defaultSignatureAlgorithm: Certificate.SignatureAlgorithm { signer.signatureAlgorithm }
    /// Just the signer's own signature algorithm.
    public var supportedSignatureAlgorithms: [Certificate.SignatureAlgorithm] { [signer.signatureAlgorithm] }

    /// Always throws `signingFailed`: Keygate signers sign asynchronously.
    public func signSynchronously(
        bytes: some DataProtocol,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) throws -> Certificate.Signature {
        throw KeygateError(.signingFailed, "Keygate signers sign asynchronously")
    }

    /// Signs through the signer; throws `signingFailed` for an algorithm other than the signer's.
    public func signAsynchronously(
        bytes: some DataProtocol & Sendable,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) async throws -> Certificate.Signature {
        guard signatureAlgorithm == signer.signatureAlgorithm else {
            throw KeygateError(.signingFailed, "signer uses \(signer.signatureAlgorithm), not \(signatureAlgorithm)")
        }
        return try await signer.certificateSignature(for: Array(bytes))
    }

    /// Equal when key location and public key are the same.
    public static func == (lhs: SignerPrivateKey, rhs: SignerPrivateKey) -> Bool { lhs.identity == rhs.identity }
    /// Hashes key location and public key, consistent with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(identity) }

    // A signer's key is never serialised: it may not even be extractable.
    /// `PRIVATE KEY`, as `CustomPrivateKey` requires; nothing is ever written under it.
    public static var defaultPEMDiscriminator: String { "PRIVATE KEY" }
    /// Always throws `signingFailed`: a signer's private key is never exported.
    public func serialize(into coder: inout DER.Serializer) throws {
        throw KeygateError(.signingFailed, "a signer's private key cannot be exported")
    }
    /// Always throws `signingFailed`: a signer cannot be made from DER.
    public init(derEncoded: ASN1Node) throws {
        throw KeygateError(.signingFailed, "a signer's private key cannot be imported from DER")
    }
}
