public import Foundation
public import KeygateDomain
public import KeygatePKI

/// What a lifecycle change does to the device's certificates.
public enum CertificateChange: Sendable, Hashable {
    /// Active certificates go on hold (`certificateHold`).
    case hold
    /// Active and held certificates are revoked for good with this reason.
    case revoke(RevocationReason)
    /// Held certificates that have not expired become active again; expired ones are revoked.
    case release
    /// Held certificates are revoked for good with this reason.
    case revokeHeld(RevocationReason)
}

/// A device lifecycle event with everything it changes, applied in one transaction.
public struct DeviceChange: Sendable {
    /// The device to change.
    public var deviceID: String
    /// The lifecycle event; refused with `invalidTransition` when the device's state forbids it.
    public var event: Device.Event
    /// Why; becomes the device's ``Device/stateReason`` (`nil` clears it).
    public var reason: String?
    /// What happens to the device's certificates; `nil`: they stay as they are.
    public var certificates: CertificateChange?
    /// Azure changes to queue in the same transaction.
    public var outbox: [OutboxItem]
    /// The audit event; the store adds the changed serials to its details.
    public var audit: AuditEvent.Draft
    /// When the change happens: the time of holds and revocations, and of the audit event.
    public var at: Date
    /// Forget the device's DDK keys and return it to `allowlisted`, so it registers again (a DDK
    /// device whose attributes changed, re-authorized by an operator).
    public var resetDDK: Bool

    /// Creates a change; by default it touches no certificates and queues nothing.
    public init(
        deviceID: String, event: Device.Event, reason: String? = nil, certificates: CertificateChange? = nil,
        outbox: [OutboxItem] = [], audit: AuditEvent.Draft, at: Date = Date(), resetDDK: Bool = false
    ) {
        self.resetDDK = resetDDK
        self.deviceID = deviceID
        self.event = event
        self.reason = reason
        self.certificates = certificates
        self.outbox = outbox
        self.audit = audit
        self.at = at
    }
}

/// A group-wide renewal campaign (`keygate group rotate`).
public struct Rotation: Sendable, Hashable, Codable {
    /// The group being rotated; starting a new rotation replaces the group's previous one.
    public var group: String
    /// When the campaign started; devices whose certificate is older are asked to renew.
    public var startedAt: Date
    /// Devices asked to renew per minute.
    public var perMinute: Int
    /// The operator's reason, stored with the campaign and in its audit event.
    public var reason: String

    /// Creates a rotation.
    public init(group: String, startedAt: Date, perMinute: Int, reason: String) {
        self.group = group
        self.startedAt = startedAt
        self.perMinute = perMinute
        self.reason = reason
    }
}

/// How far a rotation got.
public struct RotationProgress: Sendable, Hashable, Codable {
    /// Enrolled devices of the group (the campaign's scope).
    public var devices: Int
    /// Of those, how many hold a certificate issued since the campaign started.
    public var renewed: Int
    /// How many the pacing has asked to renew so far.
    public var asked: Int

    /// Creates a progress report.
    public init(devices: Int, renewed: Int, asked: Int) {
        self.devices = devices
        self.renewed = renewed
        self.asked = asked
    }
}

/// Certificate lifecycle: device changes that touch certificates, expiry watch, rotations.
public protocol LifecycleStore: Sendable {
    /// Applies the event (refusing what the state machine forbids), changes the device's certificates,
    /// queues the Azure changes and appends the audit event (with the serials changed), atomically.
    /// Returns the device and the serials whose status changed.
    func changeDevice(_ change: DeviceChange) async throws -> (Device, [String])

    /// Whether an operator let the device register its DDK keys again (set by a `resetDDK` change,
    /// cleared by the registration).
    func reregistrationAllowed(deviceID: String) async throws -> Bool

    /// The device's newest certificate (by issuance), whatever its status.
    func latestCertificate(deviceID: String) async throws -> CertificateRecord?

    /// Marks active device certificates that expire before `before`, have not expired at `now` and
    /// have no newer certificate for the same device; returns those marked by this call and the
    /// number marked in all (still unrenewed and unexpired).
    func flagExpiring(before: Date, now: Date) async throws -> (newlyFlagged: [CertificateRecord], flagged: Int)

    func startRotation(_ rotation: Rotation, audit: AuditEvent.Draft) async throws
    func rotation(group: String) async throws -> Rotation?
    func rotationProgress(_ rotation: Rotation, now: Date) async throws -> RotationProgress
    /// The device's place (0-based) in its group's rotation order.
    func rotationPosition(deviceID: String, group: String) async throws -> Int
}
