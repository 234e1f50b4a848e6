import SwiftASN1
import X509

/// Where relying parties find revocation status for certificates of one issuing CA.
public struct RevocationPointers: Sendable, Hashable, Codable {
    /// The URL of the CRL (`…/pki/crl`).
    public var crlURL: String
    /// The URL of the OCSP responder (`…/pki/ocsp`).
    public var ocspURL: String

    /// Uses the two URLs as given.
    public init(crlURL: String, ocspURL: String) {
        self.crlURL = crlURL
        self.ocspURL = ocspURL
    }

    /// Base URL form: `http://host:port` gives `…/pki/crl` and `…/pki/ocsp`.
    public init(baseURL: String) {
        let base = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.init(crlURL: base + "/pki/crl", ocspURL: base + "/pki/ocsp")
    }

    /// The CRL distribution points extension (RFC 5280 §4.2.1.13), one full-name URI:
    /// ```
    /// CRLDistributionPoints ::= SEQUENCE SIZE (1..MAX) OF DistributionPoint
    /// DistributionPoint ::= SEQUENCE {
    ///     distributionPoint       [0]     DistributionPointName OPTIONAL,
    ///     reasons                 [1]     ReasonFlags OPTIONAL,
    ///     cRLIssuer               [2]     GeneralNames OPTIONAL }
    /// DistributionPointName ::= CHOICE {
    ///     fullName                [0]     GeneralNames,
    ///     nameRelativeToCRLIssuer [1]     RelativeDistinguishedName }
    /// GeneralName ::= CHOICE { … uniformResourceIdentifier [6] IA5String, … }
    /// ```
    func crlDistributionPointsExtension() throws -> Certificate.Extension {
        let context0 = ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
        let uri = ASN1Identifier(tagWithNumber: 6, tagClass: .contextSpecific)
        var coder = DER.Serializer()
        coder.appendConstructedNode(identifier: .sequence) { coder in  // CRLDistributionPoints
            coder.appendConstructedNode(identifier: .sequence) { coder in  // DistributionPoint
                coder.appendConstructedNode(identifier: context0) { coder in  // distributionPoint
                    coder.appendConstructedNode(identifier: context0) { coder in  // fullName
                        coder.appendPrimitiveNode(identifier: uri) { $0.append(contentsOf: crlURL.utf8) }
                    }
                }
            }
        }
        return Certificate.Extension(oid: [2, 5, 29, 31], critical: false, value: coder.serializedBytes[...])
    }
}
