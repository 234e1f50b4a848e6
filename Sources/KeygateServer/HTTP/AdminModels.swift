public import Foundation
public import KeygateDomain
import KeygatePKI
public import KeygateStore
public import X509

/// The JSON bodies of `/admin/v1`, shared by the server and the `keygate` admin commands.

public struct IssueBody: Codable, Sendable {
    public struct Subject: Codable, Sendable {
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

public struct RevokeBody: Codable, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

public struct CertificateBody: Codable, Sendable {
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

public struct CertificateListBody: Codable, Sendable {
    public var certificates: [CertificateBody]
    public var next: String?
}

public struct CAEntryBody: Codable, Sendable {
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
        keyLocation = location.locationDescription
        sha256Fingerprint = try certificate.thumbprints.sha256
        self.certificate = try certificate.pemString
    }
}

public struct CAInfoBody: Codable, Sendable {
    public struct CRLInfo: Codable, Sendable {
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

public struct AuditEventBody: Codable, Sendable {
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

public struct AuditVerifyBody: Codable, Sendable {
    public var intact: Bool
    public var firstBadSequence: Int64?
    public var reason: String?
}

// MARK: Groups, allowlist, devices

/// A group's renewal campaign and how far it got.
public struct RotationBody: Codable, Sendable {
    public var group: String
    public var startedAt: Date
    public var perMinute: Int
    public var reason: String
    public var devices: Int
    public var renewed: Int
    public var asked: Int

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

public struct GroupRequest: Codable, Sendable {
    public var name: String?
    public var attestationMethods: [String]?
    public var minimumAssurance: Int?
    public var profile: String?
    public var keyAlgorithms: [String]?
    public var validityDays: Int?
    public var validitySeconds: Int?
    public var quarantineAction: String?
    public var releaseHeldOnReauthorize: Bool?
    public var allowKeyReuse: Bool?
    public var renewAfterFraction: Double?
    public var renewAfterExpiryDays: Int?
    public var approval: String?
    public var connector: String?
    public var bootstrapCAs: [String]?
    /// A group key (base64) to use, or `generateSymmetricKey` to have one made (returned once).
    public var symmetricKey: String?
    public var generateSymmetricKey: Bool?

    public init(name: String? = nil) { self.name = name }
}

public struct GroupBody: Codable, Sendable {
    public var name: String
    public var attestationMethods: [String]
    public var minimumAssurance: Int
    public var profile: String
    public var keyAlgorithms: [String]
    public var validityDays: Int
    public var validitySeconds: Int?
    public var quarantineAction: String
    public var releaseHeldOnReauthorize: Bool
    public var allowKeyReuse: Bool
    public var renewAfterFraction: Double
    public var renewAfterExpiryDays: Int
    public var approval: String
    public var connector: String?
    public var bootstrapCAs: [String]
    public var hasSymmetricKey: Bool
    /// Only in the answer that generated it.
    public var symmetricKey: String?
    public var createdAt: Date

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
        createdAt = group.createdAt
    }
}

public struct AllowlistImportRequest: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var deviceId: String
        public var group: String
        public var pinnedKey: String?
        public var token: String?
        public var generateToken: Bool?

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
    public var entries: [Row]
    /// All or nothing: any bad row and nothing is imported.
    public var strict: Bool?

    public init(entries: [Row], strict: Bool? = nil) {
        self.entries = entries
        self.strict = strict
    }
}

public struct AllowlistImportResultBody: Codable, Sendable {
    public struct RowError: Codable, Sendable {
        /// The row's index in the request (0-based).
        public var index: Int
        public var deviceId: String
        public var code: String
        public var message: String
    }
    public var added: Int
    public var updated: Int
    public var unchanged: Int
    public var errors: [RowError]
    /// Generated one-time enrollment tokens, by device ID (shown once).
    public var tokens: [String: String]?

    public init(result: AllowlistImportResult, errors: [RowError], tokens: [String: String]?) {
        added = result.added
        updated = result.updated
        unchanged = result.unchanged
        self.errors = errors
        self.tokens = tokens
    }
}

public struct AllowlistBody: Codable, Sendable {
    public var deviceId: String
    public var group: String
    public var pinnedKey: String?
    public var hasToken: Bool
    public var state: String

    public init(_ entry: AllowlistEntry, state: String) {
        deviceId = entry.deviceID
        group = entry.group
        pinnedKey = entry.pinnedKey
        hasToken = entry.tokenHash != nil
        self.state = state
    }
}

public struct AllowlistListBody: Codable, Sendable {
    public var entries: [AllowlistBody]
    public var next: String?
}

public struct DeviceBody: Codable, Sendable {
    public var deviceId: String
    public var group: String
    public var state: String
    public var stateReason: String?
    public var attestationMethod: String?
    public var assuranceLevel: Int?
    public var ddkEpoch: Int
    public var failedAttempts: Int
    public var lockedUntil: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var certificates: [CertificateBody]?
    public var events: [AuditEventBody]?

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

public struct DeviceListBody: Codable, Sendable {
    public var devices: [DeviceBody]
    public var next: String?
}

/// An admin token as the API shows it: never its hash; the text only in the answer that created it.
public struct TokenBody: Codable, Sendable {
    public var name: String
    /// `admin`, `operator` or `read-only`.
    public var role: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
    /// Whether the token is accepted now.
    public var usable: Bool
    /// The token text, in the answer to its creation only.
    public var token: String?

    public init(_ token: AdminToken) {
        name = token.name
        role = token.role.rawValue
        createdAt = token.createdAt
        expiresAt = token.expiresAt
        revokedAt = token.revokedAt
        usable = token.isUsable()
    }
}
