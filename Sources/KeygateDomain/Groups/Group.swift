public import Foundation
import KeygatePKI

/// A set of devices that share a policy.
public struct Group: Sendable, Hashable, Codable {
    /// The group's name (see ``isValidName(_:)``); devices and allowlist entries refer to it.
    public var name: String
    /// What the group's devices must prove and which certificates they get.
    public var policy: Policy
    /// When the group was created.
    public var createdAt: Date

    /// Creates a group; the policy is not validated here (see ``Policy/validate()``).
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
        /// Attestation methods accepted: `ddk`, `x509`, `symmetric-key`, and `token` (EST with HTTP Basic:
        /// the device ID and its one-time enrollment token; assurance 1).
        public var attestationMethods: [String]
        /// The least assurance an attestation must give (symmetric-key 1, ddk 2, x509 3).
        public var minimumAssurance: Int
        /// The certificate profile (`device`).
        public var profile: String
        /// Key algorithms a device CSR may use.
        public var keyAlgorithms: [String]
        /// Certificate lifetime in days (1 to 3650), unless ``validitySeconds`` overrides it.
        public var validityDays: Int
        /// A validity in seconds that overrides `validityDays` (short-lived certificates: tests,
        /// demos, fleets that renew hourly); at least 60.
        public var validitySeconds: Int?
        /// Renewal opens after this fraction of the lifetime, plus a per-certificate jitter of up
        /// to a tenth of the lifetime so a fleet does not renew in one burst.
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
        /// What quarantine does to the device's certificates: `hold` (certificateHold, can be
        /// released) or `revoke` (for good).
        public var quarantineAction: String
        /// Whether re-authorization releases the certificates a quarantine put on hold (otherwise
        /// they are revoked then, and the device lives on its new certificate only).
        public var releaseHeldOnReauthorize: Bool
        /// Whether a renewal may keep the current key (by default every renewal needs a new one).
        public var allowKeyReuse: Bool
        /// What a DDK device must hold at first contact (its first registration), so that nobody who
        /// merely knows its ID can register it first: `token` (a one-time enrollment token from the
        /// allowlist, or a pinned key), `pinned` (its epoch-0 public key pinned on the allowlist) or
        /// `open` (first come, first registered; flagged wherever the group is shown).
        public var firstContact: String

        /// Creates a policy; by default DDK with ECDSA P-256 keys, one-year `device` certificates, auto approval.
        public init(
            attestationMethods: [String] = ["ddk"], minimumAssurance: Int = 1, profile: String = "device",
            keyAlgorithms: [String] = ["ecdsa-p256"], validityDays: Int = 365, renewAfterFraction: Double = 2.0 / 3.0,
            renewAfterExpiryDays: Int = 30, approval: String = "auto", connector: String? = nil,
            bootstrapCAs: [String] = [],
            sealedGroupKey: String? = nil, validitySeconds: Int? = nil, quarantineAction: String = "hold",
            releaseHeldOnReauthorize: Bool = true, allowKeyReuse: Bool = false, firstContact: String = "token"
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
            self.validitySeconds = validitySeconds
            self.quarantineAction = quarantineAction
            self.releaseHeldOnReauthorize = releaseHeldOnReauthorize
            self.allowKeyReuse = allowKeyReuse
            self.firstContact = firstContact
        }

        /// Policies stored before a field existed decode with its default.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Policy()
            attestationMethods =
                try c.decodeIfPresent([String].self, forKey: .attestationMethods) ?? d.attestationMethods
            minimumAssurance = try c.decodeIfPresent(Int.self, forKey: .minimumAssurance) ?? d.minimumAssurance
            profile = try c.decodeIfPresent(String.self, forKey: .profile) ?? d.profile
            keyAlgorithms = try c.decodeIfPresent([String].self, forKey: .keyAlgorithms) ?? d.keyAlgorithms
            validityDays = try c.decodeIfPresent(Int.self, forKey: .validityDays) ?? d.validityDays
            validitySeconds = try c.decodeIfPresent(Int.self, forKey: .validitySeconds)
            renewAfterFraction = try c.decodeIfPresent(Double.self, forKey: .renewAfterFraction) ?? d.renewAfterFraction
            renewAfterExpiryDays =
                try c.decodeIfPresent(Int.self, forKey: .renewAfterExpiryDays) ?? d.renewAfterExpiryDays
            approval = try c.decodeIfPresent(String.self, forKey: .approval) ?? d.approval
            connector = try c.decodeIfPresent(String.self, forKey: .connector)
            bootstrapCAs = try c.decodeIfPresent([String].self, forKey: .bootstrapCAs) ?? d.bootstrapCAs
            sealedGroupKey = try c.decodeIfPresent(String.self, forKey: .sealedGroupKey)
            quarantineAction = try c.decodeIfPresent(String.self, forKey: .quarantineAction) ?? d.quarantineAction
            releaseHeldOnReauthorize =
                try c.decodeIfPresent(Bool.self, forKey: .releaseHeldOnReauthorize) ?? d.releaseHeldOnReauthorize
            allowKeyReuse = try c.decodeIfPresent(Bool.self, forKey: .allowKeyReuse) ?? d.allowKeyReuse
            // Groups stored before first-contact policies existed were first-come: they stay so (and are flagged).
            firstContact = try c.decodeIfPresent(String.self, forKey: .firstContact) ?? "open"
        }

        /// Whether ``approval`` is `manual`: attested devices wait in `pendingApproval` for an operator.
        public var requiresManualApproval: Bool { approval == "manual" }

        /// The lifetime of the group's certificates.
        public var validity: TimeInterval { TimeInterval(validitySeconds ?? validityDays * 86_400) }

        /// How long after expiry a device may still renew by re-attesting.
        public var renewalGrace: TimeInterval { TimeInterval(renewAfterExpiryDays) * 86_400 }

        /// Whether a DDK device's first registration is first-come (neither a token nor a pinned key required).
        public var firstContactIsOpen: Bool { firstContact == "open" && attestationMethods.contains("ddk") }

        /// Whether a DDK device of this group must be staged with a one-time enrollment token (or a pinned key).
        public var firstContactNeedsToken: Bool { firstContact == "token" && attestationMethods.contains("ddk") }

        /// Whether quarantine revokes (rather than holds) the device's certificates.
        public var quarantineRevokes: Bool { quarantineAction == "revoke" }

        /// When the renewal window of a certificate opens: after `renewAfterFraction` of its lifetime
        /// plus a jitter of up to a tenth of it, fixed per serial so every answer agrees.
        public func renewalOpens(issuedAt: Date, notAfter: Date, serial: String) -> Date {
            let lifetime = max(0, notAfter.timeIntervalSince(issuedAt))
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in serial.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            let jitter = Double(hash % 10_000) / 10_000 * min(0.1, 1 - renewAfterFraction)
            return issuedAt + lifetime * min(renewAfterFraction + jitter, 0.95)
        }
    }
}

extension Group.Policy {
    static let knownMethods: Set<String> = ["ddk", "x509", "symmetric-key", "token"]
    static let knownAlgorithms: Set<String> = ["ecdsa-p256", "ecdsa-p384", "rsa-3072", "ed25519"]

    /// Checks the policy; throws `invalidPolicy` naming what is wrong.
    public func validate() throws {
        func fail(_ message: String) -> KeygateError { KeygateError(.invalidPolicy, message) }
        guard !attestationMethods.isEmpty else { throw fail("a group needs at least one attestation method") }
        if let unknown = attestationMethods.first(where: { !Self.knownMethods.contains($0) }) {
            throw fail("unknown attestation method '\(unknown)'; use ddk, x509, symmetric-key or token (EST)")
        }
        guard (1...3).contains(minimumAssurance) else { throw fail("minimumAssurance must be 1, 2 or 3") }
        guard !keyAlgorithms.isEmpty else { throw fail("a group needs at least one key algorithm") }
        if let unknown = keyAlgorithms.first(where: { !Self.knownAlgorithms.contains($0) }) {
            throw fail("unknown key algorithm '\(unknown)'")
        }
        guard (1...3650).contains(validityDays) else { throw fail("validityDays must be 1 to 3650") }
        if let validitySeconds, !(60...(3650 * 86_400)).contains(validitySeconds) {
            throw fail("validitySeconds must be 60 to 315360000")
        }
        guard quarantineAction == "hold" || quarantineAction == "revoke" else {
            throw fail("quarantineAction must be hold or revoke")
        }
        guard renewAfterFraction > 0, renewAfterFraction < 1 else {
            throw fail("renewAfterFraction must be between 0 and 1")
        }
        guard (0...3650).contains(renewAfterExpiryDays) else { throw fail("renewAfterExpiryDays must be 0 to 3650") }
        guard approval == "auto" || approval == "manual" else { throw fail("approval must be auto or manual") }
        guard ["token", "pinned", "open"].contains(firstContact) else {
            throw fail("firstContact must be token, pinned or open")
        }
        if attestationMethods.contains("x509") && bootstrapCAs.isEmpty {
            throw fail("x509 attestation needs at least one bootstrap CA certificate")
        }
        if attestationMethods.contains("symmetric-key") && sealedGroupKey == nil {
            throw fail("symmetric-key attestation needs a group key")
        }
    }
}
