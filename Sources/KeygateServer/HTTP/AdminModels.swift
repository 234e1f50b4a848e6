public import Foundation
public import KeygateDomain
import KeygatePKI
public import KeygateStore
public import X509

/// The JSON bodies of `/admin/v1`, shared by the server and the `keygate` admin commands.

/// A request to issue a certificate from a CSR (`POST /admin/v1/certificates`).
public struct IssueBody: Codable, Sendable {
    /// The names Keygate puts in the certificate; the CSR's own subject is ignored.
    public struct Subject: Codable, Sendable {
        /// The subject common name (1 to 64 characters).
        public var commonName: String
        /// DNS names for the subject alternative name extension; `nil`: none.
        public var dnsNames: [String]?
        /// IP addresses (text) for the subject alternative name extension; `nil`: none.
        public var ipAddresses: [String]?

        /// Creates a subject from a common name and optional alternative names.
        public init(commonName: String, dnsNames: [String]? = nil, ipAddresses: [String]? = nil) {
            self.commonName = commonName
            self.dnsNames = dnsNames
            self.ipAddresses = ipAddresses
        }
    }
    /// The PKCS #10 CSR, PEM (`CERTIFICATE REQUEST`).
    public var csr: String
    /// The certificate profile, `device` or `server`; `nil`: `device`.
    public var profile: String?
    /// The names to certify; required (a missing subject is refused with `invalidSubject`).
    public var subject: Subject?
    /// Lifetime in days (1 to 3650); `nil`: the profile's default.
    public var validityDays: Int?
    /// The device the certificate belongs to; `nil`: none.
    public var deviceId: String?

    /// Creates an issue request.
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

/// A request to revoke a certificate.
public struct RevokeBody: Codable, Sendable {
    /// The revocation reason by name: `unspecified`, `keyCompromise`, `superseded`, `certificateHold`, ...
    public var reason: String
    /// Creates a revoke request with a reason name.
    public init(reason: String) { self.reason = reason }
}

/// A certificate record as the admin API shows it.
public struct CertificateBody: Codable, Sendable {
    /// The serial number, lower-case hex.
    public var serial: String
    /// The subject as RFC 4514 text (`CN=sensor-17`).
    public var subject: String
    /// The issuer as RFC 4514 text.
    public var issuer: String
    /// The profile it was issued under (`device`, `server`).
    public var profile: String
    /// `active`, `revoked` or `onHold`.
    public var status: String
    /// Start of validity.
    public var notBefore: Date
    /// End of validity.
    public var notAfter: Date
    /// When it was revoked or put on hold; `nil` while active.
    public var revokedAt: Date?
    /// The revocation reason by name (such as `keyCompromise`); `nil` while active.
    public var revocationReason: String?
    /// The device the certificate belongs to; `nil` for certificates without a device.
    public var deviceId: String?
    /// The certificate, PEM.
    public var certificate: String
    /// Leaf, issuing CA and root, PEM; only in the answer to an issuance.
    public var chain: String?

    /// Creates the body of a stored certificate record (without `chain`).
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

/// A page of certificates.
public struct CertificateListBody: Codable, Sendable {
    /// The certificates of this page, in issue order.
    public var certificates: [CertificateBody]
    /// The serial to pass as `after` for the next page; `nil` on the last page.
    public var next: String?
}

/// One CA certificate (root or issuing) and where its key is kept.
public struct CAEntryBody: Codable, Sendable {
    /// The CA's subject as RFC 4514 text.
    public var subject: String
    /// The serial number, hex.
    public var serial: String
    /// Start of validity.
    public var notBefore: Date
    /// End of validity.
    public var notAfter: Date
    /// `ecdsa-p256`, `ecdsa-p384`, `rsa-3072` or `ed25519`.
    public var keyAlgorithm: String
    /// `software`, `pkcs11` or `azure-key-vault`.
    public var keyStore: String
    /// A readable description of where the key is (file, Key Vault key, PKCS #11 token); never key material.
    public var keyLocation: String
    /// The SHA-256 thumbprint of the certificate.
    public var sha256Fingerprint: String
    /// The certificate, PEM.
    public var certificate: String

    /// Describes `certificate` and its configured key location; throws if it cannot be encoded.
    public init(_ certificate: Certificate, location: ServerConfiguration.CAEntry) throws {
        subject = certificate.subject.description
        serial = certificate.serialNumber.hex
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        keyAlgorithm = location.keyAlgorithm.rawValue
        keyStore = location.keyStore
        keyLocation = location.locationDescription
        sha256Fingerprint = try certificate.thumbprints.sha256
        self.certificate = try certificate.pemString
    }
}

/// The CA summary of `GET /admin/v1/ca`: both CA certificates, certificate counts and the CRL.
public struct CAInfoBody: Codable, Sendable {
    /// The current CRL.
    public struct CRLInfo: Codable, Sendable {
        /// The CRL number.
        public var number: Int64
        /// When the CRL was issued.
        public var thisUpdate: Date
        /// When the next CRL is due.
        public var nextUpdate: Date
        /// How many revoked certificates it lists.
        public var entries: Int
    }
    /// The root CA.
    public var root: CAEntryBody
    /// The issuing CA that signs device and server certificates.
    public var issuing: CAEntryBody
    /// Issued certificates counted by status (`active`, `revoked`, `onHold`).
    public var certificates: [String: Int]
    /// The current CRL.
    public var crl: CRLInfo
    /// The URL the CRL is published at.
    public var crlURL: String
    /// The URL of the OCSP responder.
    public var ocspURL: String
}

/// An audit log entry as the admin API shows it.
public struct AuditEventBody: Codable, Sendable {
    /// The entry's position in the log, increasing.
    public var sequence: Int64
    /// When the event was recorded.
    public var at: Date
    /// Who acted: `admin:<token name>`, `device:<id>`, `system`.
    public var actor: String
    /// What happened, as a dotted verb: `certificate.issued`, `device.registered`.
    public var action: String
    /// What it happened to: a serial, a device ID, a group name.
    public var subject: String
    /// Further facts as flat key/value pairs (never secrets).
    public var details: [String: String]
    /// The previous entry's hash (the genesis hash, 64 zeros, for the first).
    public var previousHash: String?
    /// The entry's chain hash: hex HMAC-SHA256 under the audit key (hex SHA-256 before the log was keyed).
    public var hash: String

    /// Creates the body of a stored audit event.
    public init(_ event: AuditEvent) {
        sequence = event.sequence
        at = event.at
        actor = event.actor
        action = event.action
        subject = event.subject
        details = event.details
        previousHash = event.previousHash
        hash = event.hash
    }
}

/// The result of verifying the audit hash chain.
public struct AuditVerifyBody: Codable, Sendable {
    /// Whether every entry verifies.
    public var intact: Bool
    /// The sequence number of the first missing or failing entry; `nil` when intact.
    public var firstBadSequence: Int64?
    /// Why that entry fails; `nil` when intact.
    public var reason: String?
    /// How many signed checkpoints were checked against the log.
    public var checkpoints: Int?
    /// The entry the newest checkpoint names; entries after it are not yet anchored.
    public var newestCheckpoint: Int64?
    /// The first entry chained with the audit key; older entries use plain SHA-256 links.
    public var keyedFrom: Int64?

    /// Creates the body of a verification.
    public init(_ verification: AuditService.Verification) {
        intact = verification.problem == nil
        firstBadSequence = verification.problem?.sequence
        reason = verification.problem?.reason
        checkpoints = verification.checkpoints
        newestCheckpoint = verification.newestCheckpoint
        keyedFrom = verification.keyedFrom
    }
}

// MARK: Groups, allowlist, devices

/// A group's renewal campaign and how far it got.
public struct RotationBody: Codable, Sendable {
    /// The group being rotated.
    public var group: String
    /// When the campaign started; devices whose certificate is older are asked to renew.
    public var startedAt: Date
    /// Devices asked to renew per minute.
    public var perMinute: Int
    /// The operator's reason for the campaign.
    public var reason: String
    /// Enrolled devices of the group.
    public var devices: Int
    /// Of those, how many hold a certificate issued since the start.
    public var renewed: Int
    /// How many the pacing has asked to renew so far.
    public var asked: Int

    /// Creates the body of a campaign and its progress.
    public init(_ rotation: Rotation, _ progress: RotationProgress) {
        group = rotation.group
        startedAt = rotation.startedAt
        perMinute = rotation.perMinute
        reason = rotation.reason
        devices = progress.devices
        renewed = progress.renewed
        asked = progress.asked
    }
}

/// Fields to create or change a group with; `nil` fields are left as they are (or defaulted on create).
public struct GroupRequest: Codable, Sendable {
    /// The group name (1 to 64 letters, digits, `-`, `_`); on create only.
    public var name: String?
    /// Attestation methods to accept: `ddk`, `x509`, `symmetric-key`.
    public var attestationMethods: [String]?
    /// The least assurance an attestation must give, 1 to 3 (symmetric-key 1, ddk 2, x509 3).
    public var minimumAssurance: Int?
    /// The certificate profile the group's devices get (`device`).
    public var profile: String?
    /// Key algorithms a device CSR may use (such as `ecdsa-p256`); unknown names fail with `invalidPolicy`.
    public var keyAlgorithms: [String]?
    /// Certificate lifetime in days; setting it clears `validitySeconds`.
    public var validityDays: Int?
    /// A lifetime in seconds (at least 60) that overrides `validityDays`; 0 clears it.
    public var validitySeconds: Int?
    /// What quarantine does to the device's certificates: `hold` or `revoke`.
    public var quarantineAction: String?
    /// Whether re-authorization releases certificates a quarantine put on hold (otherwise they are revoked).
    public var releaseHeldOnReauthorize: Bool?
    /// Whether a renewal may keep the current key (default `false`).
    public var allowKeyReuse: Bool?
    /// The fraction of a certificate's lifetime after which renewal opens (plus jitter).
    public var renewAfterFraction: Double?
    /// How long after expiry a device may still renew by re-attesting, in days.
    public var renewAfterExpiryDays: Int?
    /// `auto` or `manual` (enrollments wait in `pendingApproval`).
    public var approval: String?
    /// The connector that enrolls the group's devices in Azure; empty string: none.
    public var connector: String?
    /// x509: the bootstrap (manufacturer) CA certificates, PEM; anything else fails with `invalidPolicy`.
    public var bootstrapCAs: [String]?
    /// A group key (base64) to use, or `generateSymmetricKey` to have one made (returned once).
    public var symmetricKey: String?
    /// `true` to have a symmetric group key generated and returned once in the answer.
    public var generateSymmetricKey: Bool?
    /// What a DDK device must hold at its first registration: `token` (the default), `pinned` or `open`.
    public var firstContact: String?

    /// Creates a request that sets only the name (or nothing).
    public init(name: String? = nil) { self.name = name }
}

/// A group and its policy as the admin API shows it; the symmetric key itself never appears, except once.
public struct GroupBody: Codable, Sendable {
    /// The group name.
    public var name: String
    /// Attestation methods accepted: `ddk`, `x509`, `symmetric-key`.
    public var attestationMethods: [String]
    /// The least assurance an attestation must give, 1 to 3.
    public var minimumAssurance: Int
    /// The certificate profile the group's devices get.
    public var profile: String
    /// Key algorithms a device CSR may use.
    public var keyAlgorithms: [String]
    /// Certificate lifetime in days, unless `validitySeconds` overrides it.
    public var validityDays: Int
    /// A lifetime in seconds that overrides `validityDays`; `nil`: none.
    public var validitySeconds: Int?
    /// What quarantine does to the device's certificates: `hold` or `revoke`.
    public var quarantineAction: String
    /// Whether re-authorization releases certificates a quarantine put on hold.
    public var releaseHeldOnReauthorize: Bool
    /// Whether a renewal may keep the current key.
    public var allowKeyReuse: Bool
    /// The fraction of a certificate's lifetime after which renewal opens (plus jitter).
    public var renewAfterFraction: Double
    /// How long after expiry a device may still renew by re-attesting, in days.
    public var renewAfterExpiryDays: Int
    /// `auto` or `manual`.
    public var approval: String
    /// The connector that enrolls the group's devices in Azure; `nil`: none.
    public var connector: String?
    /// x509: the bootstrap CA certificates, PEM.
    public var bootstrapCAs: [String]
    /// Whether the group has a (sealed) symmetric group key.
    public var hasSymmetricKey: Bool
    /// What a DDK device must hold at its first registration: `token`, `pinned` or `open` (first come).
    public var firstContact: String
    /// Only in the answer that generated it.
    public var symmetricKey: String?
    /// When the group was created.
    public var createdAt: Date

    /// Creates the body of a stored group (without `symmetricKey`).
    public init(_ group: Group) {
        name = group.name
        attestationMethods = group.policy.attestationMethods
        minimumAssurance = group.policy.minimumAssurance
        profile = group.policy.profile
        keyAlgorithms = group.policy.keyAlgorithms
        validityDays = group.policy.validityDays
        validitySeconds = group.policy.validitySeconds
        quarantineAction = group.policy.quarantineAction
        releaseHeldOnReauthorize = group.policy.releaseHeldOnReauthorize
        allowKeyReuse = group.policy.allowKeyReuse
        renewAfterFraction = group.policy.renewAfterFraction
        renewAfterExpiryDays = group.policy.renewAfterExpiryDays
        approval = group.policy.approval
        connector = group.policy.connector
        bootstrapCAs = group.policy.bootstrapCAs
        hasSymmetricKey = group.policy.sealedGroupKey != nil
        firstContact = group.policy.firstContact
        createdAt = group.createdAt
    }
}

/// A batch of allowlist rows to add or update (at most 20,000).
public struct AllowlistImportRequest: Codable, Sendable {
    /// One device to allow.
    public struct Row: Codable, Sendable {
        /// The device ID (1 to 128 letters, digits and `: . _ -`).
        public var deviceId: String
        /// The name of an existing group the device joins.
        public var group: String
        /// A DDK epoch-0 public key (P-256 SPKI DER, base64url) the device must register with; `nil`: none.
        public var pinnedKey: String?
        /// A one-time enrollment token (16 to 256 characters, stored hashed); `nil`: none.
        public var token: String?
        /// `true` to have an enrollment token generated and returned once in the result; `nil`: one is
        /// generated when the group's first contact is `token` and the row brings neither a token nor a
        /// pinned key (a device already staged with one keeps it); `false`: never (such a row is refused).
        public var generateToken: Bool?

        /// Creates a row.
        public init(
            deviceId: String, group: String, pinnedKey: String? = nil, token: String? = nil, generateToken: Bool? = nil
        ) {
            self.deviceId = deviceId
            self.group = group
            self.pinnedKey = pinnedKey
            self.token = token
            self.generateToken = generateToken
        }
    }
    /// The rows, in order (errors refer to them by index).
    public var entries: [Row]
    /// All or nothing: any bad row and nothing is imported.
    public var strict: Bool?

    /// Creates an import request.
    public init(entries: [Row], strict: Bool? = nil) {
        self.entries = entries
        self.strict = strict
    }
}

/// What an allowlist import did.
public struct AllowlistImportResultBody: Codable, Sendable {
    /// A row that was not imported.
    public struct RowError: Codable, Sendable {
        /// The row's index in the request (0-based).
        public var index: Int
        /// The row's device ID.
        public var deviceId: String
        /// The Keygate error code, such as `invalidDeviceID`, `groupNotFound`, `conflict`, `malformedInput`.
        public var code: String
        /// A sentence for a human.
        public var message: String
    }
    /// Rows that created a device.
    public var added: Int
    /// Rows that changed an existing entry.
    public var updated: Int
    /// Rows equal to the existing entry.
    public var unchanged: Int
    /// Rows refused, by index; with `strict`, nothing was imported when this is not empty.
    public var errors: [RowError]
    /// Generated one-time enrollment tokens, by device ID (shown once).
    public var tokens: [String: String]?

    /// Creates the body of a store import result, the rejected rows and generated tokens.
    public init(result: AllowlistImportResult, errors: [RowError], tokens: [String: String]?) {
        added = result.added
        updated = result.updated
        unchanged = result.unchanged
        self.errors = errors
        self.tokens = tokens
    }
}

/// An allowlist entry and its device's state.
public struct AllowlistBody: Codable, Sendable {
    /// The device ID.
    public var deviceId: String
    /// The name of the group the device joins.
    public var group: String
    /// The pinned DDK epoch-0 public key (SPKI DER, base64url); `nil`: none.
    public var pinnedKey: String?
    /// Whether the device must present a one-time enrollment token (the token itself is never shown).
    public var hasToken: Bool
    /// The device's state, such as `allowlisted` or `enrolled`.
    public var state: String

    /// Creates the body of an entry and its device's state name.
    public init(_ entry: AllowlistEntry, state: String) {
        deviceId = entry.deviceID
        group = entry.group
        pinnedKey = entry.pinnedKey
        hasToken = entry.tokenHash != nil
        self.state = state
    }
}

/// A page of allowlist entries.
public struct AllowlistListBody: Codable, Sendable {
    /// The entries of this page, in device-ID order.
    public var entries: [AllowlistBody]
    /// The device ID to pass as `after` for the next page; `nil` on the last page.
    public var next: String?
}

/// A device as the admin API shows it.
public struct DeviceBody: Codable, Sendable {
    /// The device ID.
    public var deviceId: String
    /// The name of the device's group.
    public var group: String
    /// `allowlisted`, `registered`, `pendingApproval`, `approved`, `enrolled`, `quarantined` or `retired`.
    public var state: String
    /// The reason given with the last state change (such as a quarantine's); `nil` when none was.
    public var stateReason: String?
    /// The method of the last successful attestation; `nil` before one.
    public var attestationMethod: String?
    /// The assurance (1 to 3) of the attestation recorded with the last enrollment; `nil` before one.
    public var assuranceLevel: Int?
    /// DDK: the epoch whose key the next session must sign with.
    public var ddkEpoch: Int
    /// Failed attestations in a row.
    public var failedAttempts: Int
    /// Sessions are refused with `deviceLocked` until then; `nil`: not locked.
    public var lockedUntil: Date?
    /// When the device was allowlisted.
    public var createdAt: Date
    /// When the device last changed.
    public var updatedAt: Date
    /// The device's certificates, oldest first; only in the answer for a single device.
    public var certificates: [CertificateBody]?
    /// The latest audit events about the device, newest first; only in the answer for a single device.
    public var events: [AuditEventBody]?

    /// Creates the body of a stored device (without certificates and events).
    public init(_ device: Device) {
        deviceId = device.id
        group = device.group
        state = device.state.rawValue
        stateReason = device.stateReason
        attestationMethod = device.attestationMethod
        assuranceLevel = device.assuranceLevel
        ddkEpoch = device.ddkEpoch
        failedAttempts = device.failedAttempts
        lockedUntil = device.lockedUntil
        createdAt = device.createdAt
        updatedAt = device.updatedAt
    }
}

/// A page of devices.
public struct DeviceListBody: Codable, Sendable {
    /// The devices of this page, in ID order.
    public var devices: [DeviceBody]
    /// The device ID to pass as `after` for the next page; `nil` on the last page.
    public var next: String?
}

/// An admin token as the API shows it: never its hash; the text only in the answer that created it.
public struct TokenBody: Codable, Sendable {
    /// A label for the token; audit actors read `admin:<name>`.
    public var name: String
    /// `admin`, `operator` or `read-only`.
    public var role: String
    /// When the token was created.
    public var createdAt: Date
    /// When the token stops being accepted; `nil`: never.
    public var expiresAt: Date?
    /// When the token was revoked; `nil`: not revoked.
    public var revokedAt: Date?
    /// Whether the token is accepted now.
    public var usable: Bool
    /// The token text, in the answer to its creation only.
    public var token: String?

    /// Creates the body of a stored token (without the token text).
    public init(_ token: AdminToken) {
        name = token.name
        role = token.role.rawValue
        createdAt = token.createdAt
        expiresAt = token.expiresAt
        revokedAt = token.revokedAt
        usable = token.isUsable()
    }
}
