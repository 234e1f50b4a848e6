import Foundation
import SwiftASN1
public import X509

/// The checks a certificate signing request passes before anything is signed.
///
/// In order: size, encoding (PEM with the right label, or DER), the public key's algorithm and
/// size (inspected before swift-certificates parses it, so a weak or exotic key gets a precise
/// code), then proof of possession: the CSR's signature must verify with its own key.
public struct CSRPolicy: Sendable {
    /// CSRs above this size are refused before parsing.
    public var maximumBytes: Int
    /// The smallest RSA modulus accepted.
    public var minimumRSABits: Int

    /// Creates a policy; the defaults accept CSRs up to 16 KiB and RSA keys of 2048 bits or more.
    public init(maximumBytes: Int = 16 * 1024, minimumRSABits: Int = 2048) {
        self.maximumBytes = maximumBytes
        self.minimumRSABits = minimumRSABits
    }

    /// A CSR that passed every check, with its key's algorithm.
    public struct Checked: Sendable {
        /// The parsed request; its signature verifies with its own public key.
        public var csr: CertificateSigningRequest
        /// The algorithm of the CSR's key; every accepted RSA key reports `rsa3072`, whatever its size.
        public var keyAlgorithm: KeyAlgorithm
        /// The request's DER encoding (PEM input already decoded).
        public var der: [UInt8]
    }

    /// Parses and checks `bytes` (PEM or DER) against `allowed` key algorithms.
    public func check(_ bytes: [UInt8], allowed: Set<KeyAlgorithm> = Set(KeyAlgorithm.allCases)) throws -> Checked {
        guard bytes.count <= maximumBytes else {
            throw KeygateError(.csrTooLarge, "the CSR is \(bytes.count) bytes; at most \(maximumBytes) are accepted")
        }
        guard !bytes.isEmpty else { throw KeygateError(.malformedCSR, "the CSR is empty") }
        let der = try Self.derBytes(bytes)
        let key = try SubjectPublicKeyInspection(csrDER: der)
        let algorithm = try classify(key)
        guard allowed.contains(algorithm) else {
            let names = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            throw KeygateError(
                .keyAlgorithmNotAllowed, "\(algorithm.rawValue) keys are not allowed here; allowed: \(names)")
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(derEncoded: der)
        } catch {
            throw KeygateError(.malformedCSR, "the CSR cannot be parsed: \(error)")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw KeygateError(.csrSignatureInvalid, "the CSR's signature does not verify with its public key")
        }
        return Checked(csr: csr, keyAlgorithm: algorithm, der: der)
    }

    private func classify(_ key: SubjectPublicKeyInspection) throws -> KeyAlgorithm {
        switch key.algorithm {
        case .Keygate.ecPublicKey:
            switch key.curve {
            case .Keygate.prime256v1: return .p256
            case .Keygate.secp384r1: return .p384
            default:
                throw KeygateError(
                    .unsupportedKey,
                    "unsupported elliptic curve \(key.curve.map { "\($0)" } ?? "(none)"); use P-256 or P-384")
            }
        case .Keygate.rsaEncryption:
            guard let bits = key.rsaModulusBits, bits >= minimumRSABits else {
                throw KeygateError(
                    .keyTooWeak,
                    "RSA keys need at least \(minimumRSABits) bits; this one has \(key.rsaModulusBits ?? 0)")
            }
            return .rsa3072
        case .Keygate.ed25519:
            return .ed25519
        default:
            throw KeygateError(.unsupportedKey, "unsupported public key algorithm \(key.algorithm)")
        }
    }

    /// PEM (label `CERTIFICATE REQUEST`, or the old `NEW CERTIFICATE REQUEST`) or raw DER.
    static func derBytes(_ bytes: [UInt8]) throws -> [UInt8] {
        let prefix = Array("-----BEGIN".utf8)
        let trimmed = bytes.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        guard trimmed.starts(with: prefix) else { return bytes }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw KeygateError(.malformedPEM, "the PEM is not text")
        }
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: text)
        } catch {
            throw KeygateError(.malformedPEM, "the PEM cannot be decoded: \(error)")
        }
        guard document.discriminator == "CERTIFICATE REQUEST" || document.discriminator == "NEW CERTIFICATE REQUEST"
        else {
            throw KeygateError(.malformedPEM, "expected a CERTIFICATE REQUEST PEM, found \(document.discriminator)")
        }
        return document.derBytes
    }
}

/// The public key of a CSR, looked at without trusting the rest of it.
///
/// ```
/// CertificationRequest ::= SEQUENCE {
///     certificationRequestInfo  CertificationRequestInfo,
///     signatureAlgorithm        AlgorithmIdentifier,
///     signature                 BIT STRING }
/// CertificationRequestInfo ::= SEQUENCE {
///     version       INTEGER { v1(0) },
///     subject       Name,
///     subjectPKInfo SubjectPublicKeyInfo,
///     attributes    [0] Attributes }
/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
/// ```
struct SubjectPublicKeyInspection {
    var algorithm: ASN1ObjectIdentifier
    var curve: ASN1ObjectIdentifier?
    var rsaModulusBits: Int?

    init(csrDER: [UInt8]) throws {
        do {
            let root = try DER.parse(csrDER)
            let spki: ASN1Node = try DER.sequence(root, identifier: .sequence) { nodes in
                guard let info = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "empty CSR") }
                while nodes.next() != nil {}
                return try DER.sequence(info, identifier: .sequence) { nodes in
                    _ = try Int(derEncoded: &nodes)
                    _ = nodes.next()  // subject
                    guard let spki = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "no key") }
                    while nodes.next() != nil {}
                    return spki
                }
            }
            (algorithm, curve, rsaModulusBits) = try DER.sequence(spki, identifier: .sequence) { nodes in
                guard let algorithmNode = nodes.next() else {
                    throw ASN1Error.invalidASN1Object(reason: "no algorithm")
                }
                let (oid, parameters) = try parseAlgorithmIdentifier(algorithmNode)
                let key = try ASN1BitString(derEncoded: &nodes)
                var curve: ASN1ObjectIdentifier?
                var bits: Int?
                if oid == .Keygate.ecPublicKey, let parameters, parameters.identifier == .objectIdentifier {
                    curve = try ASN1ObjectIdentifier(derEncoded: parameters)
                }
                if oid == .Keygate.rsaEncryption {
                    let rsa = try DER.parse(Array(key.bytes))
                    bits = try DER.sequence(rsa, identifier: .sequence) { nodes in
                        let modulus = try ArraySlice<UInt8>(derEncoded: &nodes)
                        _ = try ArraySlice<UInt8>(derEncoded: &nodes)
                        let significant = modulus.drop(while: { $0 == 0 })
                        guard let first = significant.first else { return 0 }
                        return (significant.count - 1) * 8 + (8 - first.leadingZeroBitCount)
                    }
                }
                return (oid, curve, bits)
            }
        } catch let error as KeygateError {
            throw error
        } catch {
            throw KeygateError(.malformedCSR, "the CSR is not valid DER: \(error)")
        }
    }
}
