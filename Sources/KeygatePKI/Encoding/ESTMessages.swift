public import Foundation
public import SwiftASN1

/// What EST (RFC 7030, as updated by RFC 8951) puts on the wire besides PKCS #10: certificates in a
/// degenerate CMS SignedData, the CSR attributes a server asks for, and the base64 both travel in.
public enum ESTMessages {
    /// A "certs-only" CMS message (RFC 7030 §4.1.3, §4.2.3; RFC 5652): SignedData with certificates and
    /// neither content nor signers.
    ///
    /// ```
    /// ContentInfo ::= SEQUENCE {
    ///     contentType  ContentType,                       -- id-signedData (1.2.840.113549.1.7.2)
    ///     content      [0] EXPLICIT ANY DEFINED BY contentType }
    ///
    /// SignedData ::= SEQUENCE {
    ///     version           CMSVersion,                   -- 1
    ///     digestAlgorithms  DigestAlgorithmIdentifiers,   -- SET OF, empty
    ///     encapContentInfo  EncapsulatedContentInfo,      -- { eContentType id-data }, no eContent
    ///     certificates      [0] IMPLICIT CertificateSet OPTIONAL,
    ///     crls              [1] IMPLICIT RevocationInfoChoices OPTIONAL,  -- absent
    ///     signerInfos       SignerInfos }                 -- SET OF, empty
    ///
    /// EncapsulatedContentInfo ::= SEQUENCE {
    ///     eContentType  ContentType,
    ///     eContent      [0] EXPLICIT OCTET STRING OPTIONAL }
    /// ```
    ///
    /// `certificates` are DER certificates, written in the order given (a SET OF, sorted as DER wants).
    public static func certsOnly(_ certificates: [[UInt8]]) throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(signedData)
            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(1)
                    coder.appendConstructedNode(identifier: .set) { _ in }
                    try coder.appendConstructedNode(identifier: .sequence) { try $0.serialize(data) }
                    // DER orders the elements of a SET OF by their encodings.
                    coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific))
                    { coder in
                        for certificate in certificates.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                            coder.serializeRawBytes(certificate)
                        }
                    }
                    coder.appendConstructedNode(identifier: .set) { _ in }
                }
            }
        }
        return coder.serializedBytes
    }

    /// One element of the CSR attributes (RFC 7030 §4.5.2, as clarified by RFC 8951 §3.4):
    ///
    /// ```
    /// CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
    /// AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
    /// Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE(1..MAX) OF AttributeValue }
    /// ```
    public enum CSRAttribute: Sendable, Hashable {
        /// A bare OID: the CSR should use this algorithm (such as a signature algorithm).
        case oid(ASN1ObjectIdentifier)
        /// An attribute whose values are OIDs (such as `id-ecPublicKey` with the curve).
        case attribute(ASN1ObjectIdentifier, values: [ASN1ObjectIdentifier])
    }

    /// The DER of `CsrAttrs` holding `attributes`.
    public static func csrAttributes(_ attributes: [CSRAttribute]) throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            for attribute in attributes {
                switch attribute {
                case .oid(let oid):
                    try coder.serialize(oid)
                case .attribute(let type, let values):
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(type)
                        try coder.appendConstructedNode(identifier: .set) { coder in
                            for value in values { try coder.serialize(value) }
                        }
                    }
                }
            }
        }
        return coder.serializedBytes
    }

    /// The CSR attributes that ask for a key of `algorithm` and its usual signature algorithm.
    public static func csrAttributes(for algorithms: [KeyAlgorithm]) -> [CSRAttribute] {
        var attributes: [CSRAttribute] = []
        for algorithm in algorithms.sorted(by: { $0.rawValue < $1.rawValue }) {
            switch algorithm {
            case .p256:
                attributes += [.attribute(.Keygate.ecPublicKey, values: [.Keygate.prime256v1]), .oid(ecdsaWithSHA256)]
            case .p384:
                attributes += [.attribute(.Keygate.ecPublicKey, values: [.Keygate.secp384r1]), .oid(ecdsaWithSHA384)]
            case .rsa3072:
                attributes += [.oid(.Keygate.rsaEncryption), .oid(sha256WithRSAEncryption)]
            case .ed25519:
                attributes += [.oid(.Keygate.ed25519)]
            }
        }
        return attributes
    }

    /// Base64 as EST sends it (RFC 8951 §3.1): lines of 64 characters ending in CRLF.
    public static func base64Body(_ der: [UInt8]) -> String {
        Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
            + "\r\n"
    }

    /// The bytes of an EST request body: base64 with any line breaks and white space (RFC 8951 §3.1),
    /// also inside a PEM armour; `nil` when it is not base64.
    public static func decodeBase64Body(_ body: [UInt8]) -> [UInt8]? {
        var text = String(decoding: body, as: UTF8.self)
        if text.contains("-----BEGIN") {
            text = text.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
        }
        let compact = text.filter { !$0.isWhitespace }
        guard !compact.isEmpty, let data = Data(base64Encoded: compact) else { return nil }
        return Array(data)
    }

    static let signedData: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 7, 2]
    static let data: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 7, 1]
    static let ecdsaWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 2]
    static let ecdsaWithSHA384: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 3]
    static let sha256WithRSAEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 11]
}
