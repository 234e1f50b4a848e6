public import KeygatePKI

/// Every error code KeygateDomain throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // Group
    public static let invalidPolicy = Self("invalidPolicy", kind: .invalidInput)
    public static let groupNotFound = Self("groupNotFound", kind: .notFound)
    public static let groupExists = Self("groupExists", kind: .conflict)
    public static let deviceNotFound = Self("deviceNotFound", kind: .notFound)
    public static let deviceNotAllowlisted = Self("deviceNotAllowlisted", kind: .forbidden)
    public static let invalidDeviceID = Self("invalidDeviceID", kind: .invalidInput)
    public static let invalidTransition = Self("invalidTransition", kind: .conflict)
    public static let challengeInvalid = Self("challengeInvalid", kind: .unauthorized)
    public static let attestationFailed = Self("attestationFailed", kind: .unauthorized)
    public static let attestationMethodNotAllowed = Self("attestationMethodNotAllowed", kind: .forbidden)
    public static let assuranceTooLow = Self("assuranceTooLow", kind: .forbidden)
    public static let forkProofRequired = Self("forkProofRequired", kind: .conflict)
    public static let deviceLocked = Self("deviceLocked", kind: .rateLimited)
    public static let deviceQuarantined = Self("deviceQuarantined", kind: .forbidden)
    public static let deviceRetired = Self("deviceRetired", kind: .forbidden)
    public static let notRegistered = Self("notRegistered", kind: .conflict)
    public static let alreadyRegistered = Self("alreadyRegistered", kind: .conflict)
    public static let pinnedKeyMismatch = Self("pinnedKeyMismatch", kind: .forbidden)
    public static let enrollmentTokenInvalid = Self("enrollmentTokenInvalid", kind: .forbidden)
    public static let pendingApproval = Self("pendingApproval", kind: .conflict)
    public static let renewalGraceExpired = Self("renewalGraceExpired", kind: .forbidden)
    public static let clientCertificateRequired = Self("clientCertificateRequired", kind: .unauthorized)
    public static let clientCertificateInvalid = Self("clientCertificateInvalid", kind: .unauthorized)
    public static let keyReuse = Self("keyReuse", kind: .invalidInput)
    public static let notEnrolled = Self("notEnrolled", kind: .conflict)
    public static let rotationNotFound = Self("rotationNotFound", kind: .notFound)

    // CertificateRecord
    public static let alreadyRevoked = Self("alreadyRevoked", kind: .conflict)
    public static let certificateNotFound = Self("certificateNotFound", kind: .notFound)

    // Connector
    public static let invalidConnector = Self("invalidConnector", kind: .invalidInput)
    public static let connectorNotFound = Self("connectorNotFound", kind: .notFound)
    public static let connectorExists = Self("connectorExists", kind: .conflict)
    public static let connectorInUse = Self("connectorInUse", kind: .conflict)
    public static let outboxItemNotFound = Self("outboxItemNotFound", kind: .notFound)
}
