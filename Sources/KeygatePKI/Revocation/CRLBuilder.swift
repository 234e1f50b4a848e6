public import Foundation
import SwiftASN1
import X509

/// Encodes and signs v2 CRLs (RFC 5280 §5).
///
/// ```
/// CertificateList  ::=  SEQUENCE  {
///     tbsCertList          TBSCertList,
///     signatureAlgorithm   AlgorithmIdentifier,
///     signatureValue       BIT STRING  }
///
/// TBSCertList  ::=  SEQUENCE  {
///     version                 Version OPTIONAL,  -- if present, MUST be v2
///     signature               AlgorithmIdentifier,
///     issuer                  Name,
///     thisUpdate              Time,
///     nextUpdate              Time OPTIONAL,
///     revokedCertificates     SEQUENCE OF SEQUENCE  {
///          userCertificate         CertificateSerialNumber,
///          revocationDate          Time,
///          crlEntryExtensions      Extensions OPTIONAL  -- if present, version MUST be v2
///                               }  OPTIONAL,
///     crlExtensions           [0]  EXPLICIT Extensions OPTIONAL  -- if present, version MUST be v2
///                               }
///
/// AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] KeyIdentifier OPTIONAL, … }
/// CRLNumber ::= INTEGER (0..MAX)
/// ```
public struct CRLBuilder: Sendable {
    /// The issuing CA: its subject is the CRL's issuer, its key identifier the AKI, its signer signs.
    public var authority: CertificateAuthority

    /// Creates a builder for `authority`'s CRLs.
    public init(authority: CertificateAuthority) {
        self.authority = authority
    }

    /// Builds the signed CRL (DER) listing `entries`.
    ///
    /// An `unspecified` reason is left out of the entry, as RFC 5280 §5.3.1 asks.
    public func build(
        number: Int64,
        thisUpdate: Date,
        nextUpdate: Date,
        entries: [RevokedEntry]
    ) async throws -> [UInt8] {
        let signatureAlgorithm = authority.signer.signatureAlgorithm
        var tbs = DER.Serializer()
        try tbs.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(1)  // v2
            try signatureAlgorithm.appendAlgorithmIdentifier(into: &coder)
            try coder.serialize(authority.certificate.subject)
            try DERTime.appendTime(thisUpdate, into: &coder)
            try DERTime.appendTime(nextUpdate, into: &coder)
            if !entries.isEmpty {
                let revoked = Self.encodeEntries(entries)
                coder.appendConstructedNode(identifier: .sequence) { $0.serializeRawBytes(revoked) }
            }
            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    var aki = DER.Serializer()
                    aki.appendConstructedNode(identifier: .sequence) { aki in
                        aki.appendPrimitiveNode(
                            identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
                        ) {
                            $0.append(contentsOf: authority.keyIdentifier)
                        }
                    }
                    try appendExtension(.Keygate.authorityKeyIdentifier, value: aki.serializedBytes, into: &coder)
                    var crlNumber = DER.Serializer()
                    try crlNumber.serialize(number)
                    try appendExtension(.Keygate.cRLNumber, value: crlNumber.serializedBytes, into: &coder)
                }
            }
        }
        let tbsBytes = tbs.serializedBytes
        let signature = try await authority.signer.sign(tbsBytes)
        return try Self.wrapSigned(tbs: tbsBytes, algorithm: signatureAlgorithm, signature: signature)
    }

    /// The contents of `revokedCertificates`, written byte by byte: every entry is short (its
    /// lengths fit in one octet), and a CRL of 100,000 entries is built in well under a second.
    ///
    /// ```
    /// SEQUENCE { INTEGER serial, Time revocationDate,
    ///            [SEQUENCE { SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED reason } } }] }
    /// ```
    static func encodeEntries(_ entries: [RevokedEntry]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * 49)
        var entry: [UInt8] = []
        entry.reserveCapacity(64)
        for revoked in entries {
            entry.removeAll(keepingCapacity: true)
            // `bytes` is the magnitude without leading zeros; a positive INTEGER whose first bit is
            // set (or zero) needs one leading zero octet.
            let serial = revoked.serialNumber.bytes
            let pad = serial.first.map { $0 & 0x80 != 0 } ?? true
            entry.append(0x02)
            entry.append(UInt8(serial.count + (pad ? 1 : 0)))
            if pad { entry.append(0) }
            entry.append(contentsOf: serial)
            DERTime.appendTimeBytes(revoked.revokedAt, to: &entry)
            if revoked.reason != .unspecified {
                // Extensions { Extension { extnID cRLReason, extnValue OCTET STRING { ENUMERATED } } }
                entry.append(contentsOf: [
                    0x30, 0x0C, 0x30, 0x0A, 0x06, 0x03, 0x55, 0x1D, 0x15, 0x04, 0x03, 0x0A, 0x01,
                    UInt8(revoked.reason.rawValue),
                ])
            }
            bytes.append(0x30)
            bytes.append(UInt8(entry.count))
            bytes.append(contentsOf: entry)
        }
        return bytes
    }

    /// `SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING signature }`, shared by CRLs and OCSP.
    static func wrapSigned(
        tbs: [UInt8], algorithm: Certificate.SignatureAlgorithm, signature: [UInt8],
        trailer: ((inout DER.Serializer) throws -> Void)? = nil
    ) throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            coder.serializeRawBytes(tbs)
            try algorithm.appendAlgorithmIdentifier(into: &coder)
            try coder.serialize(ASN1BitString(bytes: signature[...]))
            try trailer?(&coder)
        }
        return coder.serializedBytes
    }
}

extension DER.Serializer {
    /// `CRLReason ::= ENUMERATED` (0...10): one content octet.
    mutating func appendReasonCode(_ reason: RevocationReason) {
        appendPrimitiveNode(identifier: .enumerated) { $0.append(UInt8(reason.rawValue)) }
    }
}
