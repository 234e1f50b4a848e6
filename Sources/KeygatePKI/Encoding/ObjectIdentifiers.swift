import SwiftASN1

/// Object identifiers Keygate encodes or matches on.
extension ASN1ObjectIdentifier {
    enum Keygate {
        // Key algorithms (RFC 5480, RFC 8017, RFC 8410)
        static let ecPublicKey: ASN1ObjectIdentifier = [1, 2, 840, 10045, 2, 1]
        static let prime256v1: ASN1ObjectIdentifier = [1, 2, 840, 10045, 3, 1, 7]
        static let secp384r1: ASN1ObjectIdentifier = [1, 3, 132, 0, 34]
        static let rsaEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 1]
        static let ed25519: ASN1ObjectIdentifier = [1, 3, 101, 112]

        // Password-based encryption (RFC 8018), AES (NIST)
        static let pbes2: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 5, 13]
        static let pbkdf2: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 5, 12]
        static let hmacWithSHA1: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 7]
        static let hmacWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 9]
        static let hmacWithSHA384: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 10]
        static let hmacWithSHA512: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 11]
        static let aes128CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 2]
        static let aes192CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 22]
        static let aes256CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 42]

        // Hashes (RFC 5754)
        static let sha1: ASN1ObjectIdentifier = [1, 3, 14, 3, 2, 26]
        static let sha256: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 1]
        static let sha384: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 2]
        static let sha512: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 3]

        // Certificate and CRL extensions (RFC 5280)
        static let authorityKeyIdentifier: ASN1ObjectIdentifier = [2, 5, 29, 35]
        static let cRLNumber: ASN1ObjectIdentifier = [2, 5, 29, 20]
        static let cRLReason: ASN1ObjectIdentifier = [2, 5, 29, 21]

        // OCSP (RFC 6960)
        static let ocspBasic: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 1]
        static let ocspNonce: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 2]
    }
}

/// Reads an `AlgorithmIdentifier` (RFC 5280 §4.1.1.2) and returns its OID and raw parameters.
///
/// ```
/// AlgorithmIdentifier ::= SEQUENCE {
///     algorithm   OBJECT IDENTIFIER,
///     parameters  ANY DEFINED BY algorithm OPTIONAL }
/// ```
func parseAlgorithmIdentifier(_ node: ASN1Node) throws -> (ASN1ObjectIdentifier, ASN1Node?) {
    try DER.sequence(node, identifier: .sequence) { nodes in
        let oid = try ASN1ObjectIdentifier(derEncoded: &nodes)
        let parameters = nodes.next()
        return (oid, parameters)
    }
}

/// Writes an `AlgorithmIdentifier` whose parameters are NULL or absent.
func appendAlgorithmIdentifier(
    _ oid: ASN1ObjectIdentifier,
    nullParameters: Bool,
    into coder: inout DER.Serializer
) throws {
    try coder.appendConstructedNode(identifier: .sequence) { coder in
        try coder.serialize(oid)
        if nullParameters { try coder.serialize(ASN1Null()) }
    }
}
