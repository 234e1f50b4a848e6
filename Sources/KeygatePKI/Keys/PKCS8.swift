public import SwiftASN1

/// PKCS #8 private key containers (RFC 5208, RFC 5958, RFC 8018).
public enum PKCS8 {
    /// The parts of a `PrivateKeyInfo` that Keygate needs.
    ///
    /// ```
    /// PrivateKeyInfo ::= SEQUENCE {
    ///     version                   INTEGER,
    ///     privateKeyAlgorithm       AlgorithmIdentifier,
    ///     privateKey                OCTET STRING,
    ///     attributes           [0]  IMPLICIT Attributes OPTIONAL,
    ///     publicKey            [1]  IMPLICIT BIT STRING OPTIONAL }   -- v2 (RFC 5958)
    /// ```
    public struct Info: Sendable {
        /// The `privateKeyAlgorithm` OID (ecPublicKey, rsaEncryption, Ed25519...).
        public var algorithm: ASN1ObjectIdentifier
        /// The named curve for EC keys.
        public var curve: ASN1ObjectIdentifier?
        /// The contents of `privateKey`.
        public var privateKey: [UInt8]

        /// Parses `PrivateKeyInfo` DER; throws `malformedDER` when it is not one.
        public init(derBytes: [UInt8]) throws {
            do {
                let root = try DER.parse(derBytes)
                (algorithm, curve, privateKey) = try DER.sequence(root, identifier: .sequence) { nodes in
                    _ = try Int(derEncoded: &nodes)
                    guard let algorithmNode = nodes.next() else {
                        throw ASN1Error.invalidASN1Object(reason: "missing privateKeyAlgorithm")
                    }
                    let (oid, parameters) = try parseAlgorithmIdentifier(algorithmNode)
                    var curve: ASN1ObjectIdentifier?
                    if let parameters, parameters.identifier == .objectIdentifier {
                        curve = try ASN1ObjectIdentifier(derEncoded: parameters)
                    }
                    let key = try ASN1OctetString(derEncoded: &nodes)
                    while nodes.next() != nil {}
                    return (oid, curve, Array(key.bytes))
                }
            } catch let error as KeygateError {
                throw error
            } catch {
                throw KeygateError(.malformedDER, "not a PKCS #8 private key: \(error)")
            }
        }
    }

    /// The 32-byte seed inside an Ed25519 `privateKey` (`CurvePrivateKey ::= OCTET STRING`, RFC 8410).
    static func ed25519Seed(_ privateKey: [UInt8]) throws -> [UInt8] {
        let inner = try ASN1OctetString(derEncoded: privateKey[...])
        return Array(inner.bytes)
    }
}
