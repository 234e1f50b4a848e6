public import Foundation
public import X509

/// One revoked certificate as it appears in a CRL or an OCSP answer.
public struct RevokedEntry: Sendable, Hashable {
    public var serialNumber: Certificate.SerialNumber
    public var revokedAt: Date
    public var reason: RevocationReason

    public init(serialNumber: Certificate.SerialNumber, revokedAt: Date, reason: RevocationReason) {
        self.serialNumber = serialNumber
        self.revokedAt = revokedAt
        self.reason = reason
    }
}
