public import Foundation
public import KeygatePKI

/// A set of devices that share a policy.
public struct Group: Sendable, Hashable, Codable {
    public var name: String
    public var policy: Policy
    public var createdAt: Date

    public init(name: String, policy: Policy, createdAt: Date = Date()) {
        self.name = name
        self.policy = policy
        self.createdAt = createdAt
    }

    /// Names: 1 to 64 letters, digits, `-` and `_`.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 64 else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }
}

extension Group {
    /// What a group's devices must do and what they get.
    public struct Policy: Sendable, Hashable, Codable {
        /// Attestation methods accepted: `ddk`, `x509`, `symmetric-key`.
        public var attestationMethods: [String]
        /// The least assurance an attestation must give (symmetric-key 1, ddk 2, x509 3).
        public var minimumAssurance: Int
        /// The certificate profile (`device`).
        public var profile: String
        /// Key algorithms a device CSR may use.
        public var keyAlgorithms: [String]
        public var validityDays: Int
        /// Renewal opens after this fraction of the lifetime (for the lifecycle).
        public var renewAfterFraction: Double
        /// How long after expiry a device may still renew by re-attesting, in days.
        public var renewAfterExpiryDays: Int
        /// `auto` or `manual`.
        public var approval: String
        /// The connector that enrolls the group's devices in Azure (later).
        public var connector: String?
        /// x509: the bootstrap (manufacturer) CA certificates, PEM.
        public var bootstrapCAs: [String]
        /// symmetric-key: the group key, sealed (never returned by the API).
        public var sealedGroupKey: String?

        public init(
            attestationMethods: [String] = ["ddk"], minimumAssurance: Int = 1, profile: String = "device",
            keyAlgorithms: [String] = ["ecdsa-p256"], validityDays: Int = 365, renewAfterFraction: Double = 2.0 / 3.0,
            renewAfterExpiryDays: Int = 30, approval: String = "auto", connector: String? = nil,
            bootstrapCAs: [String] = [],
            sealedGroupKey: String? = nil
        ) {
            self.attestationMethods = attestationMethods
            self.minimumAssurance = minimumAssurance
            self.profile = profile
            self.keyAlgorithms = keyAlgorithms
            self.validityDays = validityDays
            self.renewAfterFraction = renewAfterFraction
            self.renewAfterExpiryDays = renewAfterExpiryDays
            self.approval = approval
            self.connector = connector
            self.bootstrapCAs = bootstrapCAs
            self.sealedGroupKey = sealedGroupKey
        }

        public var requiresManualApproval: Bool { approval == "manual" }
    }
}

extension Group.Policy {
    static let knownMethods: Set<String> = ["ddk", "x509", "symmetric-key"]
    static let knownAlgorithms: Set<String> = ["ecdsa-p256", "ecdsa-p384", "rsa-3072", "ed25519"]

    /// Checks the policy; throws `invalidPolicy` naming what is wrong.
    public func validate() throws {
        func fail(_ message: String) -> KeygateError { KeygateError(.invalidPolicy, message) }
        guard !attestationMethods.isEmpty else { throw fail("a group needs at least one attestation method") }
        if let unknown = attestationMethods.first(where: { !Self.knownMethods.contains($0) }) {
            throw fail("unknown attestation method '\(unknown)'; use ddk, x509 or symmetric-key")
        }
        guard (1...3).contains(minimumAssurance) else { throw fail("minimumAssurance must be 1, 2 or 3") }
        guard !keyAlgorithms.isEmpty else { throw fail("a group needs at least one key algorithm") }
        if let unknown = keyAlgorithms.first(where: { !Self.knownAlgorithms.contains($0) }) {
            throw fail("unknown key algorithm '\(unknown)'")
        }
        guard (1...3650).contains(validityDays) else { throw fail("validityDays must be 1 to 3650") }
        guard renewAfterFraction > 0, renewAfterFraction < 1 else {
            throw fail("renewAfterFraction must be between 0 and 1")
        }
        guard (0...3650).contains(renewAfterExpiryDays) else { throw fail("renewAfterExpiryDays must be 0 to 3650") }
        guard approval == "auto" || approval == "manual" else { throw fail("approval must be auto or manual") }
        if attestationMethods.contains("x509") && bootstrapCAs.isEmpty {
            throw fail("x509 attestation needs at least one bootstrap CA certificate")
        }
        if attestationMethods.contains("symmetric-key") && sealedGroupKey == nil {
            throw fail("symmetric-key attestation needs a group key")
        }
    }
}

extension KeygateError.Code {
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
}
