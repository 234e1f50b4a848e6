import Crypto
public import Foundation
import KeygatePKI
import SwiftASN1
@_spi(FixedExpiryValidationTime) public import X509

/// X.509 bootstrap: the device signs the challenge with its manufacturer key and presents the
/// manufacturer certificate chain, which must end at one of the group's bootstrap CAs and name the
/// device (subject CN or serialNumber attribute equal to the device ID).
public enum BootstrapAttestation {
    /// `"keygate-x509-auth-v1" ‖ audience ‖ deviceId ‖ nonce ‖ SHA-256(payload)`
    public static func message(audience: String, deviceID: String, nonce: [UInt8], payload: [UInt8]) -> [UInt8] {
        DDKEncoding.message([
            Array("keygate-x509-auth-v1".utf8), Array(audience.utf8), Array(deviceID.utf8), nonce,
            Array(SHA256.hash(data: payload)),
        ])
    }

    /// The device's proof: `sign` signs with the bootstrap key (DER ECDSA, or Ed25519) and the
    /// chain (leaf first, PEM) goes along.
    public static func attest(
        _ challenge: DeviceAPI.Challenge, deviceID: String, chainPEM: [String], payload: [UInt8],
        sign: ([UInt8]) throws -> [UInt8]
    ) throws -> DeviceAPI.Attestation {
        let bytes = message(
            audience: challenge.audience, deviceID: deviceID, nonce: try challenge.nonceBytes, payload: payload)
        return DeviceAPI.Attestation(
            method: .x509, signature: Base64URL.encode(try sign(bytes)), certificateChain: chainPEM)
    }

    /// What a successful check found.
    public struct Verified: Sendable {
        /// The manufacturer certificate that names the device and whose key signed the challenge.
        public var leaf: Certificate
        /// The validated path, from the leaf up to the trusted bootstrap CA.
        public var chain: [Certificate]
    }

    /// The server's check: chain to a trusted bootstrap CA at `now`, names the device, signed the message.
    public static func verify(
        chainPEM: [String], signature: [UInt8], trustedCAs: [Certificate], deviceID: String, audience: String,
        nonce: [UInt8], payload: [UInt8], now: Date = Date()
    ) async throws -> Verified {
        guard !chainPEM.isEmpty, chainPEM.count <= 5 else {
            throw AttestationError.malformed("the bootstrap chain must hold 1 to 5 certificates")
        }
        let chain: [Certificate]
        do {
            chain = try chainPEM.map { try Certificate(pemEncoded: $0) }
        } catch {
            throw AttestationError.malformed("the bootstrap chain is not PEM certificates")
        }
        let leaf = chain[0]
        guard names(leaf, deviceID) else { return try reject("the bootstrap certificate does not name \(deviceID)") }
        var verifier = Verifier(rootCertificates: CertificateStore(trustedCAs)) {
            RFC5280Policy(fixedExpiryValidationTime: now)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
        guard case .validCertificate(let validated) = result else {
            return try reject("the bootstrap certificate does not chain to a CA this group trusts")
        }
        let bytes = message(audience: audience, deviceID: deviceID, nonce: nonce, payload: payload)
        guard leaf.publicKey.isValidSignature(signature, for: bytes, signatureAlgorithm: leaf.signatureAlgorithmForKey)
        else {
            return try reject("the signature over the challenge does not verify with the bootstrap certificate")
        }
        return Verified(leaf: leaf, chain: Array(validated))
    }

    /// The check of a bootstrap certificate presented as a TLS client certificate (EST): the TLS
    /// handshake proved the key, so only the path is checked — from `leaf` through the group's CAs
    /// (roots and intermediates alike) at `now`. Answers the device ID the certificate names (its
    /// CN, else its serialNumber attribute) and the path.
    public static func verifyClientCertificate(_ leaf: Certificate, trustedCAs: [Certificate], now: Date = Date())
        async throws -> (deviceID: String, verified: Verified)
    {
        guard let deviceID = deviceID(named: leaf) else {
            throw BootstrapRejected(reason: "the client certificate names no device (no CN or serialNumber)")
        }
        var verifier = Verifier(rootCertificates: CertificateStore(trustedCAs)) {
            RFC5280Policy(fixedExpiryValidationTime: now)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(trustedCAs))
        guard case .validCertificate(let validated) = result else {
            throw BootstrapRejected(reason: "the client certificate does not chain to a CA this group trusts")
        }
        return (deviceID, Verified(leaf: leaf, chain: Array(validated)))
    }

    /// The device ID a bootstrap certificate names: its CN, else its serialNumber (2.5.4.5).
    public static func deviceID(named certificate: Certificate) -> String? {
        var serialNumber: String?
        for rdn in certificate.subject {
            for attribute in rdn {
                if attribute.type == .RDNAttributeType.commonName { return attribute.value.description }
                if attribute.type == [2, 5, 4, 5] { serialNumber = attribute.value.description }
            }
        }
        return serialNumber
    }

    private static func reject(_ reason: String) throws -> Verified {
        throw BootstrapRejected(reason: reason)
    }

    /// CN or serialNumber (2.5.4.5) equal to the device ID.
    static func names(_ certificate: Certificate, _ deviceID: String) -> Bool {
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName || attribute.type == [2, 5, 4, 5]
            {
                if attribute.value.description == deviceID { return true }
            }
        }
        return false
    }
}

/// The bootstrap attestation was checked and refused.
public struct BootstrapRejected: Error, Sendable {
    /// Why, in one sentence; the server reports it as `attestationFailed` and counts a failed attempt.
    public var reason: String
}

extension Certificate {
    /// The signature algorithm a key of this certificate's type signs challenges with.
    var signatureAlgorithmForKey: Certificate.SignatureAlgorithm {
        if P256.Signing.PublicKey(publicKey) != nil { return .ecdsaWithSHA256 }
        if P384.Signing.PublicKey(publicKey) != nil { return .ecdsaWithSHA384 }
        if Curve25519.Signing.PublicKey(publicKey) != nil { return .ed25519 }
        return .sha256WithRSAEncryption
    }
}
