public import Foundation
public import KeygateDomain
import KeygatePKI
public import KeygateStore

/// What an operator (or Keygate itself, on proof of a clone) does to an enrolled device: approve,
/// quarantine, re-authorize, retire; and group-wide renewal campaigns (rotations). Each change, its
/// certificates' new status, its outbox items for Azure and its audit event are one transaction.
public struct LifecycleService: Sendable {
    let store: any ServerStore
    let certificates: CertificateService
    let provisioning: ProvisioningService

    /// Approves a device waiting in a group with manual approval; its next enrollment is signed.
    public func approve(deviceID: String, actor: String) async throws -> Device {
        try await store.transition(
            deviceID: deviceID, event: .approved, reason: "approved by \(actor)", attestation: nil,
            audit: .init(actor: actor, action: "device.approved", subject: deviceID))
    }

    /// Quarantines a device: its certificates go on hold or are revoked (the group's
    /// `quarantineAction`), and its DPS enrollment and hub identity (IoT Central: `enabled: false`)
    /// are disabled through the outbox, in the same transaction. OCSP answers are signed again at once.
    public func quarantine(deviceID: String, reason: String, actor: String, now: Date = Date()) async throws -> Device {
        let (device, group) = try await deviceAndGroup(deviceID)
        return try await quarantine(device: device, group: group, reason: reason, actor: actor, details: [:], now: now)
    }

    func quarantine(
        device: Device, group: Group, reason: String, actor: String, details: [String: String], now: Date
    ) async throws -> Device {
        var details = details
        details["reason"] = reason
        // A proven clone holds a copy of the key: revoked for good whatever the policy.
        let change: CertificateChange =
            reason == "cloneSuspected"
            ? .revoke(.keyCompromise) : group.policy.quarantineRevokes ? .revoke(.privilegeWithdrawn) : .hold
        let (quarantined, serials) = try await store.changeDevice(
            DeviceChange(
                deviceID: device.id, event: .quarantined, reason: reason, certificates: change,
                outbox: try await provisioning.azureChange(.disable, deviceID: device.id, group: group),
                audit: .init(actor: actor, action: "device.quarantined", subject: device.id, details: details), at: now)
        )
        await certificates.statusChanged(serials, now: now)
        return quarantined
    }

    /// Lets a quarantined device attest again: it returns to `registered`, its held certificates are
    /// released or revoked (the group's `releaseHeldOnReauthorize`), its enrollment and hub identity
    /// are enabled again, and its next enrollment issues a new certificate that replaces the one in
    /// Azure. With `allowReregistration` its DDK keys are forgotten and it registers again (its
    /// attributes changed: a new board, a new disk); the registration is audited as a re-registration.
    public func reauthorize(deviceID: String, actor: String, allowReregistration: Bool = false, now: Date = Date())
        async throws -> Device
    {
        let (device, group) = try await deviceAndGroup(deviceID)
        let change: CertificateChange = group.policy.releaseHeldOnReauthorize ? .release : .revokeHeld(.superseded)
        let (reauthorized, serials) = try await store.changeDevice(
            DeviceChange(
                deviceID: device.id, event: .reauthorized, reason: "reauthorized by \(actor)", certificates: change,
                outbox: try await provisioning.azureChange(.enable, deviceID: device.id, group: group),
                audit: .init(
                    actor: actor, action: "device.reauthorized", subject: device.id,
                    details: allowReregistration ? ["reregistration": "allowed"] : [:]), at: now,
                resetDDK: allowReregistration))
        await certificates.statusChanged(serials, now: now)
        return reauthorized
    }

    /// Retires a device for good: its certificates are revoked (`cessationOfOperation`), its DPS
    /// enrollment and hub identity (or IoT Central device) are deleted through the outbox.
    public func retire(deviceID: String, reason: String?, actor: String, now: Date = Date()) async throws -> Device {
        let (device, group) = try await deviceAndGroup(deviceID)
        let (retired, serials) = try await store.changeDevice(
            DeviceChange(
                deviceID: device.id, event: .retired, reason: reason ?? "retired by \(actor)",
                certificates: .revoke(.cessationOfOperation),
                outbox: try await provisioning.azureChange(.delete, deviceID: device.id, group: group),
                audit: .init(
                    actor: actor, action: "device.retired", subject: device.id,
                    details: reason.map { ["reason": $0] } ?? [:]), at: now))
        await certificates.statusChanged(serials, now: now)
        return retired
    }

    private func deviceAndGroup(_ deviceID: String) async throws -> (Device, Group) {
        guard let device = try await store.device(id: deviceID) else {
            throw KeygateError(.deviceNotFound, "no device \(deviceID)")
        }
        guard let group = try await store.group(named: device.group) else {
            throw KeygateError(.groupNotFound, "the group \(device.group) of \(device.id) does not exist")
        }
        return (device, group)
    }

    // MARK: Rotation

    /// Starts (or restarts) a renewal campaign for a group: every enrolled device whose certificate
    /// predates it is asked to renew, `perMinute` devices per minute, in device-ID order.
    public func startRotation(group name: String, perMinute: Int, reason: String, actor: String, now: Date = Date())
        async throws -> (Rotation, RotationProgress)
    {
        guard try await store.group(named: name) != nil else {
            throw KeygateError(.groupNotFound, "no group named '\(name)'")
        }
        guard (1...1_000_000).contains(perMinute) else {
            throw KeygateError(.malformedInput, "perMinute must be 1 to 1000000")
        }
        let rotation = Rotation(group: name, startedAt: now, perMinute: perMinute, reason: reason)
        try await store.startRotation(
            rotation,
            audit: .init(
                actor: actor, action: "group.rotationStarted", subject: name,
                details: ["perMinute": "\(perMinute)", "reason": reason]))
        return (rotation, try await store.rotationProgress(rotation, now: now))
    }

    /// The group's current rotation and how far it got.
    public func rotation(group name: String, now: Date = Date()) async throws -> (Rotation, RotationProgress) {
        guard let rotation = try await store.rotation(group: name) else {
            throw KeygateError(.rotationNotFound, "group \(name) has no rotation")
        }
        return (rotation, try await store.rotationProgress(rotation, now: now))
    }
}
