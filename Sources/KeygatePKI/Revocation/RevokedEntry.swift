public import Foundation
public import X509

/// One revoked certificate as it appears in a CRL or an OCSP answer.
public struct RevokedEntry: Sendable, Hashable {
    /// The revoked certificate's serial number.
    public var serialNumber: Certificate.SerialNumber
    /// When the certificate was revoked; whole seconds are written to CRLs and OCSP answers.
    public var revokedAt: Date
    /// Why it was revoked; `unspecified` is left out of CRL entries and OCSP answers.
    public var reason: RevocationReason

    /// Creates an entry.
    public init(serialNumber: Certificate.SerialNumber, revokedAt: Date, reason: RevocationReason) {
        self.serialNumber = serialNumber
        self.revokedAt = revokedAt
        self.reason = reason
    }
}
