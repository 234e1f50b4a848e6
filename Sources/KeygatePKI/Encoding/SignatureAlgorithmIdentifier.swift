import SwiftASN1
import X509

extension Certificate.SignatureAlgorithm {
    /// Writes this algorithm as an `AlgorithmIdentifier` (RFC 5758 §3.2: ECDSA without
    /// parameters; RFC 4055: RSA PKCS #1 v1.5 with NULL; RFC 8410: Ed25519 without parameters).
    func appendAlgorithmIdentifier(into coder: inout DER.Serializer) throws {
        switch self {
        case .ecdsaWithSHA256:
            try KeygatePKI.appendAlgorithmIdentifier([1, 2, 840, 10045, 4, 3, 2], nullParameters: false, into: &coder)
        case .ecdsaWithSHA384:
            try KeygatePKI.appendAlgorithmIdentifier([1, 2, 840, 10045, 4, 3, 3], nullParameters: false, into: &coder)
        case .ecdsaWithSHA512:
            try KeygatePKI.appendAlgorithmIdentifier([1, 2, 840, 10045, 4, 3, 4], nullParameters: false, into: &coder)
        case .sha256WithRSAEncryption:
            try KeygatePKI.appendAlgorithmIdentifier([1, 2, 840, 113549, 1, 1, 11], nullParameters: true, into: &coder)
        case .sha384WithRSAEncryption:
            try KeygatePKI.appendAlgorithmIdentifier([1, 2, 840, 113549, 1, 1, 12], nullParameters: true, into: &coder)
        case .ed25519:
            try KeygatePKI.appendAlgorithmIdentifier([1, 3, 101, 112], nullParameters: false, into: &coder)
        default:
            throw KeygateError(.signingFailed, "Keygate does not sign with \(self)")
        }
    }
}

/// Writes one `Extension` (RFC 5280 §4.1):
/// ```
/// Extension ::= SEQUENCE {
///     extnID      OBJECT IDENTIFIER,
///     critical    BOOLEAN DEFAULT FALSE,
///     extnValue   OCTET STRING }
/// ```
func appendExtension(
    _ oid: ASN1ObjectIdentifier, critical: Bool = false, value: [UInt8], into coder: inout DER.Serializer
) throws {
    try coder.appendConstructedNode(identifier: .sequence) { coder in
        try coder.serialize(oid)
        if critical { try coder.serialize(true) }
        try coder.serialize(ASN1OctetString(contentBytes: value[...]))
    }
}
