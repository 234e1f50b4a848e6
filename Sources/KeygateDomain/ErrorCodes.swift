public import KeygatePKI

/// Every error code KeygateDomain throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // Group
    /// A group policy field is unknown or out of range; the message names it.
    public static let invalidPolicy = Self("invalidPolicy", kind: .invalidInput)
    /// No group has the given name.
    public static let groupNotFound = Self("groupNotFound", kind: .notFound)
    /// A group with that name exists already.
    public static let groupExists = Self("groupExists", kind: .conflict)
    /// No device has the given ID.
    public static let deviceNotFound = Self("deviceNotFound", kind: .notFound)
    /// A device asked for a session but is not on the allowlist.
    public static let deviceNotAllowlisted = Self("deviceNotAllowlisted", kind: .forbidden)
    /// A device ID is empty, too long or uses characters outside letters, digits and `: . _ -`.
    public static let invalidDeviceID = Self("invalidDeviceID", kind: .invalidInput)
    /// The device's state does not allow the requested lifecycle event.
    public static let invalidTransition = Self("invalidTransition", kind: .conflict)
    /// The challenge is unknown, used, expired, foreign, or another session of the device completed first.
    public static let challengeInvalid = Self("challengeInvalid", kind: .unauthorized)
    /// The attestation did not verify; counts as a failed attempt.
    public static let attestationFailed = Self("attestationFailed", kind: .unauthorized)
    /// The device's group does not accept this attestation method.
    public static let attestationMethodNotAllowed = Self("attestationMethodNotAllowed", kind: .forbidden)
    /// The method gives less assurance than the group's ``Group/Policy/minimumAssurance``.
    public static let assuranceTooLow = Self("assuranceTooLow", kind: .forbidden)
    /// A DDK signature did not match the current epoch; the device must send a fork proof.
    public static let forkProofRequired = Self("forkProofRequired", kind: .conflict)
    /// Too many failed attestations; carries `retryAfter` until ``Device/lockedUntil``.
    public static let deviceLocked = Self("deviceLocked", kind: .rateLimited)
    /// The device is quarantined; sessions are refused.
    public static let deviceQuarantined = Self("deviceQuarantined", kind: .forbidden)
    /// The device is retired; sessions are refused for good.
    public static let deviceRetired = Self("deviceRetired", kind: .forbidden)
    /// A DDK device authenticated before registering its keys.
    public static let notRegistered = Self("notRegistered", kind: .conflict)
    /// A device registered its DDK keys again without an operator allowing it.
    public static let alreadyRegistered = Self("alreadyRegistered", kind: .conflict)
    /// The epoch-0 key is not the one pinned on the allowlist; counts as a failed attempt.
    public static let pinnedKeyMismatch = Self("pinnedKeyMismatch", kind: .forbidden)
    /// The one-time enrollment token is missing, wrong or already used.
    public static let enrollmentTokenInvalid = Self("enrollmentTokenInvalid", kind: .forbidden)
    /// The group's first contact is `token`: the device was staged without a token or pinned key, so
    /// it cannot register (stage it again with one).
    public static let enrollmentTokenRequired = Self("enrollmentTokenRequired", kind: .forbidden)
    /// The group's first contact is `pinned`: the device's epoch-0 key must be pinned on the allowlist.
    public static let pinnedKeyRequired = Self("pinnedKeyRequired", kind: .forbidden)
    /// The device waits for an operator's approval.
    public static let pendingApproval = Self("pendingApproval", kind: .conflict)
    /// The device's certificate expired longer ago than the group's grace; an operator must re-authorize it.
    public static let renewalGraceExpired = Self("renewalGraceExpired", kind: .forbidden)
    /// An mTLS device call came without a client certificate.
    public static let clientCertificateRequired = Self("clientCertificateRequired", kind: .unauthorized)
    /// The client certificate is not a current device certificate of this CA, or names another device.
    public static let clientCertificateInvalid = Self("clientCertificateInvalid", kind: .unauthorized)
    /// A renewal CSR reuses the current key, which the group does not allow.
    public static let keyReuse = Self("keyReuse", kind: .invalidInput)
    /// The call needs an enrolled device.
    public static let notEnrolled = Self("notEnrolled", kind: .conflict)
    /// The group has no rotation campaign.
    public static let rotationNotFound = Self("rotationNotFound", kind: .notFound)

    // CertificateRecord
    /// The certificate is revoked already (or already on hold, for a hold).
    public static let alreadyRevoked = Self("alreadyRevoked", kind: .conflict)
    /// No certificate has the given serial.
    public static let certificateNotFound = Self("certificateNotFound", kind: .notFound)

    // Connector
    /// A connector's name, type or settings are invalid, or a needed secret is missing.
    public static let invalidConnector = Self("invalidConnector", kind: .invalidInput)
    /// No connector has the given name.
    public static let connectorNotFound = Self("connectorNotFound", kind: .notFound)
    /// A connector with that name exists already.
    public static let connectorExists = Self("connectorExists", kind: .conflict)
    /// A group still names the connector, so it cannot be removed.
    public static let connectorInUse = Self("connectorInUse", kind: .conflict)
    /// No outbox item has the given ID.
    public static let outboxItemNotFound = Self("outboxItemNotFound", kind: .notFound)

    // AdminToken
    /// No usable admin token has that name.
    public static let tokenNotFound = Self("tokenNotFound", kind: .notFound)
    /// The admin token expired or was revoked.
    public static let tokenExpired = Self("tokenExpired", kind: .unauthorized)
    /// The admin token's role does not allow this call.
    public static let roleForbidden = Self("roleForbidden", kind: .forbidden)
}
