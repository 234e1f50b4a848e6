public import SwiftASN1
public import X509

/// A decoded OCSP request (RFC 6960 §4.1.1). Keygate reads the certificate IDs and the nonce,
/// and ignores an optional signature.
///
/// ```
/// OCSPRequest ::= SEQUENCE {
///     tbsRequest                  TBSRequest,
///     optionalSignature   [0]     EXPLICIT Signature OPTIONAL }
///
/// TBSRequest ::= SEQUENCE {
///     version             [0]     EXPLICIT Version DEFAULT v1,
///     requestorName       [1]     EXPLICIT GeneralName OPTIONAL,
///     requestList                 SEQUENCE OF Request,
///     requestExtensions   [2]     EXPLICIT Extensions OPTIONAL }
///
/// Request ::= SEQUENCE {
///     reqCert                     CertID,
///     singleRequestExtensions     [0] EXPLICIT Extensions OPTIONAL }
///
/// CertID ::= SEQUENCE {
///     hashAlgorithm       AlgorithmIdentifier,
///     issuerNameHash      OCTET STRING, -- Hash of issuer's DN
///     issuerKeyHash       OCTET STRING, -- Hash of issuer's public key
///     serialNumber        CertificateSerialNumber }
/// ```
public struct OCSPRequest: Sendable {
    /// One certificate asked about: hashes of its issuer's name and key, and its serial number.
    public struct CertID: Sendable, Hashable {
        /// The hash used for both issuer hashes; an `unsupported` one never matches Keygate's CA.
        public var hashAlgorithm: OCSPHashAlgorithm
        /// Hash of the issuer's DER-encoded subject name.
        public var issuerNameHash: [UInt8]
        /// Hash of the issuer's `subjectPublicKey` BIT STRING value.
        public var issuerKeyHash: [UInt8]
        /// Serial number of the certificate asked about.
        public var serialNumber: Certificate.SerialNumber
        /// The `CertID` exactly as the client sent it; echoed back in the response.
        var der: [UInt8]
    }

    /// The certificates asked about, in request order (1 to ``maximumCertIDs``).
    public var certIDs: [CertID]
    /// The `extnValue` of the nonce extension, echoed verbatim (RFC 8954).
    public var nonceExtensionValue: [UInt8]?

    /// At most this many certificates in one request.
    public static let maximumCertIDs = 16

    /// Decodes a DER request.
    ///
    /// Throws `malformedOCSPRequest` when it is not a valid request, lists no certificate or more
    /// than ``maximumCertIDs``, or carries a nonce longer than 128 bytes.
    public init(derBytes: [UInt8]) throws {
        do {
            let root = try DER.parse(derBytes)
            var ids: [CertID] = []
            var nonce: [UInt8]?
            try DER.sequence(root, identifier: .sequence) { nodes in
                guard let tbs = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "no tbsRequest") }
                _ = nodes.next()  // optionalSignature
                try DER.sequence(tbs, identifier: .sequence) { nodes in
                    while let node = nodes.next() {
                        switch node.identifier {
                        case ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific),
                            ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific):
                            continue
                        case .sequence:
                            ids = try Self.parseRequestList(node)
                        case ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific):
                            nonce = try Self.nonce(in: node)
                        default:
                            throw ASN1Error.invalidASN1Object(reason: "unexpected field in TBSRequest")
                        }
                    }
                }
            }
            guard !ids.isEmpty else { throw ASN1Error.invalidASN1Object(reason: "empty requestList") }
            guard ids.count <= Self.maximumCertIDs else {
                throw KeygateError(.malformedOCSPRequest, "at most \(Self.maximumCertIDs) certificates per request")
            }
            self.certIDs = ids
            self.nonceExtensionValue = nonce
        } catch let error as KeygateError {
            throw error
        } catch {
            throw KeygateError(.malformedOCSPRequest, "not a valid OCSP request: \(error)")
        }
    }

    /// Encodes a request for `ids` without a nonce or signature (what most devices send).
    public static func encode(_ ids: [CertID]) -> [UInt8] {
        var coder = DER.Serializer()
        coder.appendConstructedNode(identifier: .sequence) { coder in
            coder.appendConstructedNode(identifier: .sequence) { coder in
                coder.appendConstructedNode(identifier: .sequence) { coder in
                    for id in ids {
                        coder.appendConstructedNode(identifier: .sequence) { $0.serializeRawBytes(id.der) }
                    }
                }
            }
        }
        return coder.serializedBytes
    }

    private static func parseRequestList(_ node: ASN1Node) throws -> [CertID] {
        try DER.sequence(node, identifier: .sequence) { nodes in
            var ids: [CertID] = []
            while let request = nodes.next() {
                let id = try DER.sequence(request, identifier: .sequence) { nodes in
                    guard let certID = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "no reqCert") }
                    _ = nodes.next()  // singleRequestExtensions
                    return try parseCertID(certID)
                }
                ids.append(id)
                if ids.count > maximumCertIDs { break }
            }
            while nodes.next() != nil {}
            return ids
        }
    }

    private static func parseCertID(_ node: ASN1Node) throws -> CertID {
        var coder = DER.Serializer()
        coder.serialize(node)
        let der = coder.serializedBytes
        return try DER.sequence(node, identifier: .sequence) { nodes in
            guard let algorithmNode = nodes.next() else {
                throw ASN1Error.invalidASN1Object(reason: "no hashAlgorithm")
            }
            let (oid, _) = try parseAlgorithmIdentifier(algorithmNode)
            let nameHash = try ASN1OctetString(derEncoded: &nodes)
            let keyHash = try ASN1OctetString(derEncoded: &nodes)
            let serial = try ArraySlice<UInt8>(derEncoded: &nodes)
            return CertID(
                hashAlgorithm: OCSPHashAlgorithm(oid: oid), issuerNameHash: Array(nameHash.bytes),
                issuerKeyHash: Array(keyHash.bytes), serialNumber: Certificate.SerialNumber(bytes: serial), der: der)
        }
    }

    /// `requestExtensions [2] EXPLICIT Extensions`: returns the nonce's `extnValue` if present.
    private static func nonce(in node: ASN1Node) throws -> [UInt8]? {
        guard case .constructed(let children) = node.content, let extensions = children.first(where: { _ in true })
        else { return nil }
        return try DER.sequence(extensions, identifier: .sequence) { nodes in
            var found: [UInt8]?
            while let ext = nodes.next() {
                try DER.sequence(ext, identifier: .sequence) { nodes in
                    let oid = try ASN1ObjectIdentifier(derEncoded: &nodes)
                    var value = nodes.next()
                    if value?.identifier == .boolean { value = nodes.next() }
                    guard let value else { throw ASN1Error.invalidASN1Object(reason: "extension without value") }
                    if oid == .Keygate.ocspNonce {
                        let octets = try ASN1OctetString(derEncoded: value)
                        guard octets.bytes.count <= 128 else {
                            throw KeygateError(.malformedOCSPRequest, "the nonce is longer than 128 bytes")
                        }
                        found = Array(octets.bytes)
                    }
                }
            }
            return found
        }
    }
}

/// The hash a `CertID` uses for the issuer's name and key.
public enum OCSPHashAlgorithm: Sendable, Hashable {
    case sha1, sha256, sha384, sha512, unsupported(ASN1ObjectIdentifier)

    init(oid: ASN1ObjectIdentifier) {
        switch oid {
        case .Keygate.sha1: self = .sha1
        case .Keygate.sha256: self = .sha256
        case .Keygate.sha384: self = .sha384
        case .Keygate.sha512: self = .sha512
        default: self = .unsupported(oid)
        }
    }
}
