public import Foundation
public import SwiftASN1
public import X509

/// Adapts a ``CertificateSigner`` to swift-certificates' `CustomPrivateKey`, so that
/// `Certificate(…, issuerAsyncPrivateKey:)` signs through whatever holds the key.
public struct SignerPrivateKey: CustomPrivateKey {
    public let signer: any CertificateSigner
    private let identity: String

    public init(_ signer: any CertificateSigner) {
        self.signer = signer
        self.identity = signer.keyLocation.description + "|" + String(describing: signer.publicKey)
    }

    public var publicKey: Certificate.PublicKey { signer.publicKey }
    public var defaultSignatureAlgorithm: Certificate.SignatureAlgorithm { signer.signatureAlgorithm }
    public var supportedSignatureAlgorithms: [Certificate.SignatureAlgorithm] { [signer.signatureAlgorithm] }

    public func signSynchronously(
        bytes: some DataProtocol,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) throws -> Certificate.Signature {
        throw KeygateError(.signingFailed, "Keygate signers sign asynchronously")
    }

    public func signAsynchronously(
        bytes: some DataProtocol & Sendable,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) async throws -> Certificate.Signature {
        guard signatureAlgorithm == signer.signatureAlgorithm else {
            throw KeygateError(.signingFailed, "signer uses \(signer.signatureAlgorithm), not \(signatureAlgorithm)")
        }
        return try await signer.certificateSignature(for: Array(bytes))
    }

    public static func == (lhs: SignerPrivateKey, rhs: SignerPrivateKey) -> Bool { lhs.identity == rhs.identity }
    public func hash(into hasher: inout Hasher) { hasher.combine(identity) }

    // A signer's key is never serialised: it may not even be extractable.
    public static var defaultPEMDiscriminator: String { "PRIVATE KEY" }
    public func serialize(into coder: inout DER.Serializer) throws {
        throw KeygateError(.signingFailed, "a signer's private key cannot be exported")
    }
    public init(derEncoded: ASN1Node) throws {
        throw KeygateError(.signingFailed, "a signer's private key cannot be imported from DER")
    }
}
