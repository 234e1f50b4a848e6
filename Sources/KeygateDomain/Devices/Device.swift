public import Foundation

/// A device Keygate knows: allowlisted, and possibly registered, enrolled, quarantined...
public struct Device: Sendable, Hashable, Codable {
    /// The device ID (see ``AllowlistEntry/isValidDeviceID(_:)``): the DPS registration ID and certificate CN.
    public var id: String
    /// The name of the device's group, whose policy applies to it.
    public var group: String
    /// Where the device is in its lifecycle; changed only through ``State/apply(_:)``.
    public var state: State
    /// The method of the last successful attestation.
    public var attestationMethod: String?
    /// The assurance (1 to 3) of the attestation recorded with the last enrollment; `nil` before one.
    public var assuranceLevel: Int?
    /// DDK: the epoch whose key the next session must sign with.
    public var ddkEpoch: Int
    /// Failed attestations in a row; reset by a success and when the device gets locked.
    public var failedAttempts: Int
    /// Sessions are refused with `deviceLocked` until then, after too many failures; `nil`: never locked.
    public var lockedUntil: Date?
    /// The reason given with the last state change (such as a quarantine's); `nil` when none was.
    public var stateReason: String?
    /// When the device was first allowlisted.
    public var createdAt: Date
    /// When the device last changed (state, epoch, failures).
    public var updatedAt: Date

    /// Creates a device; new devices start `allowlisted` at DDK epoch 0.
    public init(
        id: String, group: String, state: State = .allowlisted, attestationMethod: String? = nil,
        assuranceLevel: Int? = nil, ddkEpoch: Int = 0, failedAttempts: Int = 0, lockedUntil: Date? = nil,
        stateReason: String? = nil, createdAt: Date = Date(), updatedAt: Date = Date()
    ) {
        self.id = id
        self.group = group
        self.state = state
        self.attestationMethod = attestationMethod
        self.assuranceLevel = assuranceLevel
        self.ddkEpoch = ddkEpoch
        self.failedAttempts = failedAttempts
        self.lockedUntil = lockedUntil
        self.stateReason = stateReason
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Whether ``lockedUntil`` is still in the future at `date`.
    public func isLocked(at date: Date = Date()) -> Bool {
        lockedUntil.map { $0 > date } ?? false
    }
}

extension Device {
    /// The lifecycle of a device. Each transition is an ``Event``; ``State/apply(_:)`` says whether
    /// it is allowed, and every applied transition is written to the audit log by the caller.
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        /// On the allowlist; has not proven anything yet.
        case allowlisted
        /// DDK keys registered (session 0 done); not enrolled yet.
        case registered
        /// Attested, waiting for an operator (`keygate device approve`).
        case pendingApproval
        /// Approved by an operator; its next attested enroll gets a certificate.
        case approved
        /// Holds a certificate.
        case enrolled
        /// Suspected or compromised: certificates held or revoked, calls refused.
        case quarantined
        /// Gone for good.
        case retired
    }

    /// What can happen to a device.
    public enum Event: String, Sendable, Hashable, Codable {
        case registered
        case awaitApproval
        case approved
        case enrolled
        case quarantined
        case reauthorized
        case retired
    }
}

extension Device.State {
    /// The state after `event`, or `nil` when the event is not allowed in this state.
    public func apply(_ event: Device.Event) -> Device.State? {
        switch (self, event) {
        case (.allowlisted, .registered): return .registered
        case (.allowlisted, .awaitApproval), (.registered, .awaitApproval), (.pendingApproval, .awaitApproval):
            return .pendingApproval
        case (.pendingApproval, .approved): return .approved
        case (.allowlisted, .enrolled), (.registered, .enrolled), (.pendingApproval, .enrolled), (.approved, .enrolled),
            (.enrolled, .enrolled):
            return .enrolled
        case (.retired, _): return nil
        case (_, .quarantined): return .quarantined
        case (.quarantined, .reauthorized): return .registered
        case (_, .retired): return .retired
        default: return nil
        }
    }

    /// Whether the device may open sessions at all.
    public var acceptsSessions: Bool {
        self != .quarantined && self != .retired
    }
}
