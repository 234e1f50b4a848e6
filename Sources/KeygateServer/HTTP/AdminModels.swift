public import Foundation
public import KeygateDomain
import KeygatePKI
public import X509

/// The JSON bodies of `/admin/v1`, shared by the server and the `keygate` admin commands.

public struct IssueBody: Codable {
    public struct Subject: Codable {
        public var commonName: String
        public var dnsNames: [String]?
        public var ipAddresses: [String]?

        public init(commonName: String, dnsNames: [String]? = nil, ipAddresses: [String]? = nil) {
            self.commonName = commonName
            self.dnsNames = dnsNames
            self.ipAddresses = ipAddresses
        }
    }
    public var csr: String
    public var profile: String?
    public var subject: Subject?
    public var validityDays: Int?
    public var deviceId: String?

    public init(
        csr: String, profile: String? = nil, subject: Subject? = nil, validityDays: Int? = nil, deviceId: String? = nil
    ) {
        self.csr = csr
        self.profile = profile
        self.subject = subject
        self.validityDays = validityDays
        self.deviceId = deviceId
    }
}

public struct RevokeBody: Codable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

public struct CertificateBody: Codable {
    public var serial: String
    public var subject: String
    public var issuer: String
    public var profile: String
    public var status: String
    public var notBefore: Date
    public var notAfter: Date
    public var revokedAt: Date?
    public var revocationReason: String?
    public var deviceId: String?
    public var certificate: String
    public var chain: String?

    public init(_ record: CertificateRecord) {
        serial = record.serial
        subject = record.subject
        issuer = record.issuer
        profile = record.profile
        status = record.status.rawValue
        notBefore = record.notBefore
        notAfter = record.notAfter
        revokedAt = record.revokedAt
        revocationReason = record.revocationReason?.name
        deviceId = record.deviceID
        certificate = record.pem
    }
}

public struct CertificateListBody: Codable {
    public var certificates: [CertificateBody]
    public var next: String?
}

public struct CAEntryBody: Codable {
    public var subject: String
    public var serial: String
    public var notBefore: Date
    public var notAfter: Date
    public var keyAlgorithm: String
    public var keyStore: String
    public var keyLocation: String
    public var sha256Fingerprint: String
    public var certificate: String

    public init(_ certificate: Certificate, location: ServerConfiguration.CAEntry) throws {
        subject = certificate.subject.description
        serial = certificate.serialNumber.hex
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        keyAlgorithm = location.keyAlgorithm.rawValue
        keyStore = location.keyStore
        keyLocation = location.keyFile.map { "encrypted PKCS#8 file \($0)" } ?? location.keyStore
        sha256Fingerprint = try certificate.thumbprints.sha256
        self.certificate = try certificate.pemString
    }
}

public struct CAInfoBody: Codable {
    public struct CRLInfo: Codable {
        public var number: Int64
        public var thisUpdate: Date
        public var nextUpdate: Date
        public var entries: Int
    }
    public var root: CAEntryBody
    public var issuing: CAEntryBody
    public var certificates: [String: Int]
    public var crl: CRLInfo
    public var crlURL: String
    public var ocspURL: String
}

public struct AuditEventBody: Codable {
    public var sequence: Int64
    public var at: Date
    public var actor: String
    public var action: String
    public var subject: String
    public var details: [String: String]
    public var hash: String

    public init(_ event: AuditEvent) {
        sequence = event.sequence
        at = event.at
        actor = event.actor
        action = event.action
        subject = event.subject
        details = event.details
        hash = event.hash
    }
}

public struct AuditVerifyBody: Codable {
    public var intact: Bool
    public var firstBadSequence: Int64?
    public var reason: String?
}
