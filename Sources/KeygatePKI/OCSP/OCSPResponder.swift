import Crypto
public import Foundation
import SwiftASN1
public import X509

/// The status of one certificate, as the responder's lookup reports it.
public enum OCSPCertificateStatus: Sendable, Hashable {
    case good
    case revoked(at: Date, reason: RevocationReason)
    /// Never issued by this CA.
    case unknown
}

/// Answers OCSP requests for one issuing CA, signing with the CA's own key (RFC 6960 §2.6:
/// the CA is the responder, so no delegated responder certificate is needed).
///
/// ```
/// OCSPResponse ::= SEQUENCE {
///     responseStatus         OCSPResponseStatus,
///     responseBytes          [0] EXPLICIT ResponseBytes OPTIONAL }
/// OCSPResponseStatus ::= ENUMERATED {
///     successful (0), malformedRequest (1), internalError (2), tryLater (3),
///     sigRequired (5), unauthorized (6) }
/// ResponseBytes ::= SEQUENCE {
///     responseType   OBJECT IDENTIFIER,          -- id-pkix-ocsp-basic
///     response       OCTET STRING }
/// BasicOCSPResponse ::= SEQUENCE {
///     tbsResponseData      ResponseData,
///     signatureAlgorithm   AlgorithmIdentifier,
///     signature            BIT STRING,
///     certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ResponseData ::= SEQUENCE {
///     version              [0] EXPLICIT Version DEFAULT v1,
///     responderID              ResponderID,
///     producedAt               GeneralizedTime,
///     responses                SEQUENCE OF SingleResponse,
///     responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
/// ResponderID ::= CHOICE {
///     byName   [1] Name,
///     byKey    [2] KeyHash }     -- SHA-1 of the responder's subjectPublicKey BIT STRING value
/// SingleResponse ::= SEQUENCE {
///     certID                       CertID,
///     certStatus                   CertStatus,
///     thisUpdate                   GeneralizedTime,
///     nextUpdate         [0]       EXPLICIT GeneralizedTime OPTIONAL,
///     singleExtensions   [1]       EXPLICIT Extensions OPTIONAL }
/// CertStatus ::= CHOICE {
///     good        [0]     IMPLICIT NULL,
///     revoked     [1]     IMPLICIT RevokedInfo,
///     unknown     [2]     IMPLICIT UnknownInfo }
/// RevokedInfo ::= SEQUENCE {
///     revocationTime              GeneralizedTime,
///     revocationReason    [0]     EXPLICIT CRLReason OPTIONAL }
/// ```
public struct OCSPResponder: Sendable {
    /// The `OCSPResponseStatus` values Keygate sends; everything but `successful` goes out unsigned.
    public enum Status: UInt8, Sendable {
        case successful = 0
        case malformedRequest = 1
        case internalError = 2
        case tryLater = 3
        case unauthorized = 6
    }

    /// The CA answered for; its signer signs every successful response.
    public let authority: CertificateAuthority
    /// How long an answer may be cached (`nextUpdate - thisUpdate`).
    public var validity: TimeInterval
    private let nameHashes: [OCSPHashAlgorithm: [UInt8]]
    private let keyHashes: [OCSPHashAlgorithm: [UInt8]]
    private let sha1KeyHash: [UInt8]

    /// Precomputes the CA's name and key hashes (SHA-1/256/384/512); answers stay valid for an hour by default.
    public init(authority: CertificateAuthority, validity: TimeInterval = 3600) throws {
        self.authority = authority
        self.validity = validity
        var nameCoder = DER.Serializer()
        try nameCoder.serialize(authority.certificate.subject)
        let name = nameCoder.serializedBytes
        let key = try Self.subjectPublicKeyBits(authority.certificate.publicKey)
        nameHashes = [
            .sha1: Array(Insecure.SHA1.hash(data: name)), .sha256: Array(SHA256.hash(data: name)),
            .sha384: Array(SHA384.hash(data: name)), .sha512: Array(SHA512.hash(data: name)),
        ]
        keyHashes = [
            .sha1: Array(Insecure.SHA1.hash(data: key)), .sha256: Array(SHA256.hash(data: key)),
            .sha384: Array(SHA384.hash(data: key)), .sha512: Array(SHA512.hash(data: key)),
        ]
        sha1KeyHash = keyHashes[.sha1]!
    }

    /// Whether a CertID names this responder's CA.
    public func isIssuedByThisCA(_ id: OCSPRequest.CertID) -> Bool {
        nameHashes[id.hashAlgorithm] == id.issuerNameHash && keyHashes[id.hashAlgorithm] == id.issuerKeyHash
    }

    /// The `CertID` most clients send for `serial` (SHA-1, NULL parameters, as OpenSSL and most
    /// device stacks build it), so an answer can be signed before anyone asks.
    public func certID(serial: Certificate.SerialNumber) throws -> OCSPRequest.CertID {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(ASN1ObjectIdentifier.Keygate.sha1)
                try coder.serialize(ASN1Null())
            }
            try coder.serialize(ASN1OctetString(contentBytes: nameHashes[.sha1]![...]))
            try coder.serialize(ASN1OctetString(contentBytes: sha1KeyHash[...]))
            try coder.serialize(serial.bytes)
        }
        return OCSPRequest.CertID(
            hashAlgorithm: .sha1, issuerNameHash: nameHashes[.sha1]!, issuerKeyHash: sha1KeyHash, serialNumber: serial,
            der: coder.serializedBytes)
    }

    /// Answers a DER request. Never throws: a bad request gets a `malformedRequest` answer,
    /// a lookup failure `tryLater`, a CertID for another CA `unauthorized`.
    public func respond(
        to requestDER: [UInt8],
        now: Date = Date(),
        lookup: (Certificate.SerialNumber) async throws -> OCSPCertificateStatus
    ) async -> [UInt8] {
        guard let request = try? OCSPRequest(derBytes: requestDER) else {
            return Self.unsignedResponse(.malformedRequest)
        }
        guard request.certIDs.allSatisfy(isIssuedByThisCA) else {
            return Self.unsignedResponse(.unauthorized)
        }
        do {
            var answers: [(OCSPRequest.CertID, OCSPCertificateStatus)] = []
            for id in request.certIDs {
                answers.append((id, try await lookup(id.serialNumber)))
            }
            return try await signedResponse(answers, nonce: request.nonceExtensionValue, now: now)
        } catch {
            return Self.unsignedResponse(.tryLater)
        }
    }

    /// Signs a response for the given statuses.
    public func signedResponse(
        _ answers: [(OCSPRequest.CertID, OCSPCertificateStatus)],
        nonce: [UInt8]?,
        now: Date
    ) async throws -> [UInt8] {
        let thisUpdate = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        var tbs = DER.Serializer()
        try tbs.appendConstructedNode(identifier: .sequence) { coder in
            // responderID: byKey [2] EXPLICIT KeyHash
            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific)) {
                try $0.serialize(ASN1OctetString(contentBytes: sha1KeyHash[...]))
            }
            try coder.serialize(try DERTime.generalizedTime(thisUpdate))
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                for (id, status) in answers {
                    try appendSingleResponse(id: id, status: status, thisUpdate: thisUpdate, into: &coder)
                }
            }
            if let nonce {
                try coder.appendConstructedNode(
                    identifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)
                ) {
                    coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        // The request's extnValue, byte for byte (RFC 8954 §2.1).
                        try appendExtension(.Keygate.ocspNonce, value: nonce, into: &coder)
                    }
                }
            }
        }
        let tbsBytes = tbs.serializedBytes
        let signature = try await authority.signer.sign(tbsBytes)
        let basic = try CRLBuilder.wrapSigned(
            tbs: tbsBytes, algorithm: authority.signer.signatureAlgorithm, signature: signature)
        var response = DER.Serializer()
        try response.appendConstructedNode(identifier: .sequence) { coder in
            coder.appendPrimitiveNode(identifier: .enumerated) { $0.append(Status.successful.rawValue) }
            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(ASN1ObjectIdentifier.Keygate.ocspBasic)
                    try coder.serialize(ASN1OctetString(contentBytes: basic[...]))
                }
            }
        }
        return response.serializedBytes
    }

    private func appendSingleResponse(
        id: OCSPRequest.CertID, status: OCSPCertificateStatus, thisUpdate: Date, into coder: inout DER.Serializer
    ) throws {
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            coder.serializeRawBytes(id.der)
            switch status {
            case .good:
                coder.appendPrimitiveNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                    _ in
                }
            case .revoked(let at, let reason):
                try coder.appendConstructedNode(
                    identifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)
                ) {
                    coder in
                    try coder.serialize(try DERTime.generalizedTime(at))
                    if reason != .unspecified {
                        coder.appendConstructedNode(
                            identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
                        ) { $0.appendReasonCode(reason) }
                    }
                }
            case .unknown:
                coder.appendPrimitiveNode(identifier: ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific)) {
                    _ in
                }
            }
            try coder.serialize(try DERTime.generalizedTime(thisUpdate))
            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                try $0.serialize(try DERTime.generalizedTime(thisUpdate + validity))
            }
        }
    }

    /// An `OCSPResponse` without `responseBytes`, for error statuses.
    public static func unsignedResponse(_ status: Status) -> [UInt8] {
        [0x30, 0x03, 0x0A, 0x01, status.rawValue]
    }

    /// The value of the `subjectPublicKey` BIT STRING (what KeyHash hashes).
    static func subjectPublicKeyBits(_ key: Certificate.PublicKey) throws -> [UInt8] {
        Array(key.subjectPublicKeyInfoBytes)
    }
}
