public import Foundation
public import KeygatePKI

/// What Keygate remembers about every certificate it issued.
public struct CertificateRecord: Sendable, Hashable, Codable {
    /// The serial number, lower-case hex.
    public var serial: String
    /// The subject as RFC 4514 text (`CN=sensor-17`).
    public var subject: String
    /// The issuing CA's subject.
    public var issuer: String
    /// Start of validity, backdated for clock skew; stored in whole seconds.
    public var notBefore: Date
    /// End of validity; stored in whole seconds.
    public var notAfter: Date
    /// The profile it was issued under (`device`, `server`).
    public var profile: String
    /// Whether the certificate is active, on hold or revoked (expiry is not a status).
    public var status: Status
    /// When it was revoked or put on hold (whole seconds); `nil` while active.
    public var revokedAt: Date?
    /// Why it was revoked (`certificateHold` while on hold); `nil` while active.
    public var revocationReason: RevocationReason?
    /// The certificate, PEM.
    public var pem: String
    /// The device the certificate belongs to, if any.
    public var deviceID: String?
    /// When Keygate issued and recorded it (milliseconds); orders a device's certificates and query pages.
    public var createdAt: Date

    /// The revocation state of a certificate, as stored and as reported by OCSP.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Issued and not revoked (it may still have expired; see ``CertificateRecord/isExpired(at:)``).
        case active
        /// Revoked for good.
        case revoked
        /// Suspended with `certificateHold`; can be released.
        case onHold
    }

    /// Creates a record; new certificates start `active`.
    public init(
        serial: String, subject: String, issuer: String, notBefore: Date, notAfter: Date, profile: String,
        status: Status = .active, revokedAt: Date? = nil, revocationReason: RevocationReason? = nil,
        pem: String, deviceID: String? = nil, createdAt: Date = Date()
    ) {
        self.serial = serial
        self.subject = subject
        self.issuer = issuer
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.profile = profile
        self.status = status
        self.revokedAt = revokedAt
        self.revocationReason = revocationReason
        self.pem = pem
        self.deviceID = deviceID
        self.createdAt = createdAt
    }

    /// Whether ``notAfter`` has passed at `date`.
    public func isExpired(at date: Date = Date()) -> Bool { notAfter < date }

    /// The status an OCSP responder reports for this record.
    public var ocspStatus: OCSPCertificateStatus {
        switch status {
        case .active: return .good
        case .revoked, .onHold:
            return .revoked(at: revokedAt ?? createdAt, reason: revocationReason ?? .unspecified)
        }
    }

    /// Applies a revocation. A held certificate may be revoked for good; a revoked one may not change.
    public mutating func revoke(reason: RevocationReason, at date: Date) throws {
        switch status {
        case .revoked:
            throw KeygateError(.alreadyRevoked, "certificate \(serial) was already revoked")
        case .onHold where reason == .certificateHold:
            throw KeygateError(.alreadyRevoked, "certificate \(serial) is already on hold")
        case .active, .onHold:
            status = reason == .certificateHold ? .onHold : .revoked
            revocationReason = reason
            revokedAt = date
        }
    }
}

/// Filters for listing certificates.
public struct CertificateQuery: Sendable, Hashable {
    /// Only certificates in this status; `nil`: any.
    public var status: CertificateRecord.Status?
    /// Only certificates of this device; `nil`: any, including certificates without a device.
    public var deviceID: String?
    /// Only certificates issued under this profile (`device`, `server`); `nil`: any.
    public var profile: String?
    /// Only certificates whose `notAfter` is before this date.
    public var expiringBefore: Date?
    /// Only certificates that have not expired at this date.
    public var unexpiredAt: Date?
    /// Only active device certificates that no newer certificate of the same device replaced.
    public var unrenewedOnly: Bool
    /// Keyset paging: serials after this one in creation order.
    public var after: String?
    /// The most results to return; the store clamps it to 1...10,000.
    public var limit: Int

    /// Creates a query; without arguments it returns the first 100 certificates in creation order.
    public init(
        status: CertificateRecord.Status? = nil, deviceID: String? = nil, profile: String? = nil,
        expiringBefore: Date? = nil, unexpiredAt: Date? = nil, unrenewedOnly: Bool = false, after: String? = nil,
        limit: Int = 100
    ) {
        self.unexpiredAt = unexpiredAt
        self.unrenewedOnly = unrenewedOnly
        self.status = status
        self.deviceID = deviceID
        self.profile = profile
        self.expiringBefore = expiringBefore
        self.after = after
        self.limit = limit
    }
}
