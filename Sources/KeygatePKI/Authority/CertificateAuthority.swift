import Crypto
public import Foundation
import SwiftASN1
public import X509

/// A CA that can sign: its certificate, the chain up to the root, and a signer holding its key.
///
/// ```swift
/// let root = try await CertificateAuthority.makeRoot(name: "Acme Root CA", signer: rootSigner)
/// let issuing = try await root.makeSubordinate(name: "Acme Devices CA", signer: issuingSigner)
/// let issued = try await issuing.issue(csr: checked, profile: .device,
///                                      identity: .init(commonName: "sensor-17"), revocation: urls)
/// ```
public struct CertificateAuthority: Sendable {
    /// The CA's own certificate: the issuer of what it signs, and the first element of ``chain``.
    public let certificate: Certificate
    /// The CA's own certificate followed by its issuers, ending at the root.
    public let chain: [Certificate]
    /// Holds the CA's private key; certificates, CRLs and OCSP responses of this CA are signed through it.
    public let signer: any CertificateSigner
    /// The chain as concatenated PEM, leaf first (computed once).
    public let chainPEM: String

    /// Pairs a CA certificate with its chain and signer, and encodes ``chainPEM``.
    ///
    /// Throws `conflict` when `signer`'s public key is not the certificate's.
    public init(certificate: Certificate, chain: [Certificate], signer: any CertificateSigner) throws {
        guard certificate.publicKey == signer.publicKey else {
            throw KeygateError(.conflict, "the CA key does not belong to the CA certificate \(certificate.subject)")
        }
        self.certificate = certificate
        self.chain = chain
        self.signer = signer
        self.chainPEM = try chain.map { try $0.pemString }.joined()
    }

    /// The SubjectKeyIdentifier of the CA, which becomes the AKI of what it signs.
    public var keyIdentifier: ArraySlice<UInt8> {
        if let ski = try? certificate.extensions.subjectKeyIdentifier {
            return ski.keyIdentifier
        }
        return SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
    }

    // MARK: Making CAs

    /// Creates a self-signed root CA certificate.
    public static func makeRoot(
        name: String,
        organization: String? = nil,
        signer: any CertificateSigner,
        validity: TimeInterval = 20 * 365 * 86_400,
        now: Date = Date()
    ) async throws -> CertificateAuthority {
        let subject = try caName(name, organization: organization)
        let ski = SubjectKeyIdentifier(hash: signer.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            ski
        }
        let certificate = try await Certificate(
            version: .v3, serialNumber: .random(), publicKey: signer.publicKey,
            notValidBefore: now - CertificateProfile.clockSkewAllowance, notValidAfter: now + validity,
            issuer: subject, subject: subject, signatureAlgorithm: signer.signatureAlgorithm,
            extensions: extensions, issuerAsyncPrivateKey: .init(SignerPrivateKey(signer))
        )
        return try CertificateAuthority(certificate: certificate, chain: [certificate], signer: signer)
    }

    /// Creates a CA certificate for `signer`'s key, signed by this CA (path length 0: it issues
    /// end-entity certificates only).
    public func makeSubordinate(
        name: String,
        organization: String? = nil,
        signer subordinateSigner: any CertificateSigner,
        validity: TimeInterval = 10 * 365 * 86_400,
        now: Date = Date()
    ) async throws -> CertificateAuthority {
        let subject = try Self.caName(name, organization: organization)
        let notAfter = min(now + validity, certificate.notValidAfter)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: subordinateSigner.publicKey)
            AuthorityKeyIdentifier(keyIdentifier: keyIdentifier)
        }
        let issued = try await Certificate(
            version: .v3, serialNumber: .random(), publicKey: subordinateSigner.publicKey,
            notValidBefore: now - CertificateProfile.clockSkewAllowance, notValidAfter: notAfter,
            issuer: certificate.subject, subject: subject, signatureAlgorithm: signer.signatureAlgorithm,
            extensions: extensions, issuerAsyncPrivateKey: .init(SignerPrivateKey(signer))
        )
        return try CertificateAuthority(certificate: issued, chain: [issued] + chain, signer: subordinateSigner)
    }

    private static func caName(_ name: String, organization: String?) throws -> DistinguishedName {
        try DistinguishedName {
            if let organization { OrganizationName(organization) }
            CommonName(name)
        }
    }

    // MARK: Issuing

    /// Signs an end-entity certificate for a checked CSR.
    ///
    /// Only the CSR's public key is used: subject and SANs come from `identity`, everything else
    /// from `profile`. `notBefore` is backdated by ``CertificateProfile/clockSkewAllowance``;
    /// `notAfter` never passes the CA's own.
    public func issue(
        csr: CSRPolicy.Checked,
        profile: CertificateProfile,
        identity: CertificateIdentity,
        revocation: RevocationPointers?,
        validity: TimeInterval? = nil,
        now: Date = Date()
    ) async throws -> Certificate {
        guard profile.allowedKeyAlgorithms.contains(csr.keyAlgorithm) else {
            throw KeygateError(
                .keyAlgorithmNotAllowed, "profile '\(profile.name)' does not allow \(csr.keyAlgorithm.rawValue) keys")
        }
        try identity.validate(for: profile.purpose)
        let lifetime = validity ?? TimeInterval(profile.validitySeconds)
        guard lifetime > 0 else { throw KeygateError(.malformedInput, "the validity must be positive") }
        let extensions = try profile.extensions(
            subjectKey: csr.csr.publicKey, keyAlgorithm: csr.keyAlgorithm, identity: identity,
            issuerKeyIdentifier: keyIdentifier, revocation: revocation
        )
        return try await Certificate(
            version: .v3, serialNumber: .random(), publicKey: csr.csr.publicKey,
            notValidBefore: now - CertificateProfile.clockSkewAllowance,
            notValidAfter: min(now + lifetime, certificate.notValidAfter),
            issuer: certificate.subject, subject: try identity.subject,
            signatureAlgorithm: signer.signatureAlgorithm, extensions: extensions,
            issuerAsyncPrivateKey: .init(SignerPrivateKey(signer))
        )
    }
}

extension Certificate {
    /// The certificate as PEM text (ending in a newline).
    public var pemString: String {
        get throws { PEM.encode(label: "CERTIFICATE", der: try derBytes) }
    }

    /// The DER encoding.
    public var derBytes: [UInt8] {
        get throws {
            var coder = DER.Serializer()
            try coder.serialize(self)
            return coder.serializedBytes
        }
    }

    /// SHA-1 and SHA-256 thumbprints in upper-case hex (as Azure shows them).
    public var thumbprints: (sha1: String, sha256: String) {
        get throws {
            let der = try derBytes
            return (
                Hex.encode(Insecure.SHA1.hash(data: der), uppercase: true),
                Hex.encode(SHA256.hash(data: der), uppercase: true)
            )
        }
    }
}

extension CertificateSigningRequest {
    /// The DER encoding.
    public var derBytes: [UInt8] {
        get throws {
            var coder = DER.Serializer()
            try coder.serialize(self)
            return coder.serializedBytes
        }
    }
}
