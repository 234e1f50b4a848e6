public import Foundation
public import KeygateDomain

/// Groups, the allowlist, devices, challenges and DDK key history.
public protocol OnboardingStore: Sendable {
    func createGroup(_ group: Group, audit: AuditEvent.Draft) async throws
    func updateGroup(_ group: Group, audit: AuditEvent.Draft) async throws
    func group(named name: String) async throws -> Group?
    func groups() async throws -> [Group]

    /// Adds or updates allowlist entries (one transaction). Devices past `allowlisted` keep their state.
    func importAllowlist(_ entries: [AllowlistEntry], actor: String) async throws -> AllowlistImportResult
    /// Removes a device that has not enrolled yet.
    func removeFromAllowlist(deviceID: String, audit: AuditEvent.Draft) async throws
    func allowlistEntry(deviceID: String) async throws -> AllowlistEntry?
    /// The entries of those of `deviceIDs` that are on the allowlist, by device ID.
    func allowlistEntries(deviceIDs: [String]) async throws -> [String: AllowlistEntry]

    func device(id: String) async throws -> Device?
    func devices(state: Device.State?, group: String?, after: String?, limit: Int) async throws -> [Device]
    func deviceCounts() async throws -> [Device.State: Int]

    func saveChallenge(_ challenge: Challenge) async throws
    /// Marks the challenge used and returns it, if it exists, belongs to `deviceID`, is unused and
    /// unexpired; `nil` otherwise. At most one caller ever gets a given challenge.
    func consumeChallenge(id: String, deviceID: String, now: Date) async throws -> Challenge?

    func ddkPublicKey(deviceID: String, epoch: Int) async throws -> [UInt8]?
    /// DDK session 0: stores `P_0` and `P_1`, moves to epoch 1 and state `registered`.
    func registerDDK(deviceID: String, publicKey: [UInt8], nextPublicKey: [UInt8], audit: AuditEvent.Draft) async throws
        -> Device
    /// After a verified DDK session at `epoch`: stores `P_{e+1}` and moves to `e+1`. Fails with
    /// `challengeInvalid` if another session moved the epoch first.
    func advanceDDK(deviceID: String, from epoch: Int, nextPublicKey: [UInt8]) async throws -> Device
    /// Counts a failed attestation; locks the device for `lockFor` after `lockAfter` failures in a row.
    func recordAttestationFailure(
        deviceID: String, lockAfter: Int, lockFor: TimeInterval, now: Date, audit: AuditEvent.Draft
    ) async throws -> Device
    /// Resets the failure count after a successful attestation.
    func clearAttestationFailures(deviceID: String) async throws -> Device
    /// Applies a lifecycle event (refusing transitions the state machine forbids) with its audit event
    /// and the Azure changes it needs (queued in the same transaction).
    func transition(
        deviceID: String, event: Device.Event, reason: String?, attestation: (method: String, level: Int)?,
        outbox: [OutboxItem], audit: AuditEvent.Draft
    ) async throws -> Device
    /// Records a certificate and moves the device to `enrolled`, in one transaction; marks the
    /// one-time enrollment token used when `consumeToken`; queues `outbox` (its Azure enrollment) in
    /// the same transaction.
    func enroll(
        deviceID: String, certificate: CertificateRecord, attestation: (method: String, level: Int),
        consumeToken: Bool, outbox: OutboxItem?, audit: [AuditEvent.Draft]
    ) async throws -> Device
}

extension OnboardingStore {
    /// A lifecycle event that needs nothing in Azure.
    public func transition(
        deviceID: String, event: Device.Event, reason: String?, attestation: (method: String, level: Int)?,
        audit: AuditEvent.Draft
    ) async throws -> Device {
        try await transition(
            deviceID: deviceID, event: event, reason: reason, attestation: attestation, outbox: [], audit: audit)
    }
}

/// What an allowlist import did.
public struct AllowlistImportResult: Sendable, Hashable, Codable {
    /// Device IDs that were not known before, now `allowlisted`.
    public var added: Int
    /// Still-allowlisted devices whose group, pinned key or token hash changed (their token is unused again).
    public var updated: Int
    /// Entries identical to the stored ones, or for devices past `allowlisted` (left as they are).
    public var unchanged: Int

    /// Creates a result.
    public init(added: Int = 0, updated: Int = 0, unchanged: Int = 0) {
        self.added = added
        self.updated = updated
        self.unchanged = unchanged
    }
}
