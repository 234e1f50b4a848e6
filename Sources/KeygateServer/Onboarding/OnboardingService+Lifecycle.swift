public import Foundation
public import KeygateAttestation
public import KeygateDomain
import KeygatePKI
public import KeygateStore
import SwiftASN1
import X509

/// Renewal over mTLS, quarantine, re-authorization and retirement.
extension OnboardingService {
    // MARK: Renewal (mTLS)

    /// A device proven by its current certificate: issued by this CA, recorded for the device,
    /// active and unexpired, the device enrolled and not quarantined.
    struct CertificateSession {
        var device: Device
        var group: Group
        var record: CertificateRecord
        var certificate: Certificate
    }

    func certificateSession(clientCertificate der: [UInt8]?, now: Date) async throws -> CertificateSession {
        guard let der else {
            throw KeygateError(
                .clientCertificateRequired,
                "present the device's current certificate as the TLS client certificate (or re-attest with POST /device/v1/enroll)"
            )
        }
        guard let certificate = try? Certificate(derEncoded: der),
            certificate.issuer == certificates.authority.certificate.subject,
            certificates.authority.certificate.publicKey.isValidSignature(certificate.signature, for: certificate),
            let record = try await store.certificate(serial: certificate.serialNumber.hex),
            let deviceID = record.deviceID
        else {
            throw KeygateError(
                .clientCertificateInvalid, "the client certificate is not a device certificate of this CA")
        }
        let (device, group) = try await admit(deviceID, now: now)
        guard record.status == .active else {
            throw KeygateError(.clientCertificateInvalid, "the client certificate \(record.serial) is revoked")
        }
        guard record.notAfter >= now else {
            throw KeygateError(
                .clientCertificateInvalid,
                "the client certificate expired; re-attest with POST /device/v1/enroll within the group's grace")
        }
        guard device.state == .enrolled else {
            throw KeygateError(.notEnrolled, "\(device.id) is \(device.state.rawValue), not enrolled")
        }
        // Only the newest certificate speaks for the device: an older one (still valid as the Azure
        // enrollment's secondary) must not renew, or a copy of an old key would outlive every renewal.
        guard try await store.latestCertificate(deviceID: deviceID)?.serial == record.serial else {
            throw KeygateError(
                .clientCertificateInvalid,
                "certificate \(record.serial) was superseded by a renewal; present the device's newest certificate")
        }
        return CertificateSession(device: device, group: group, record: record, certificate: certificate)
    }

    /// Renews the certificate presented over mTLS: a new certificate for the CSR (a new key unless
    /// the group allows reuse); the Azure enrollment gets it as primary and keeps the presented one
    /// as secondary until that one expires.
    public func renew(_ request: DeviceAPI.RenewRequest, clientCertificate: [UInt8]?, now: Date = Date())
        async throws -> DeviceAPI.EnrollResponse
    {
        let started = ContinuousClock.now
        guard let csr = DeviceAPI.payloadIfPEM(request.csr) else {
            throw KeygateError(.malformedPEM, "csr must be a PEM CERTIFICATE REQUEST")
        }
        let session = try await certificateSession(clientCertificate: clientCertificate, now: now)
        let device = session.device
        if let claimed = request.deviceId, claimed != device.id {
            throw KeygateError(
                .clientCertificateInvalid, "the client certificate belongs to \(device.id), not \(claimed)")
        }
        let policy = session.group.policy
        let checked = try certificates.csrPolicy.check(
            csr, allowed: Set(policy.keyAlgorithms.compactMap(KeyAlgorithm.init(rawValue:))))
        if !policy.allowKeyReuse,
            checked.csr.publicKey.subjectPublicKeyInfoBytes == session.certificate.publicKey.subjectPublicKeyInfoBytes
        {
            throw KeygateError(.keyReuse, "a renewal needs a new key; the CSR reuses the current certificate's key")
        }
        var profile = try CertificateProfile.named(policy.profile)
        profile.allowedKeyAlgorithms = Set(policy.keyAlgorithms.compactMap(KeyAlgorithm.init(rawValue:)))
        let issued = try await certificates.sign(
            csr: csr, profile: profile, identity: CertificateIdentity(commonName: device.id),
            validity: policy.validity, deviceID: device.id)
        let actor = "device:\(device.id)"
        let connector = try await connector(of: session.group)
        let outbox = connector.map {
            OutboxItem(
                connector: $0.name, deviceID: device.id, action: .enroll, certificate: issued.record.pem,
                previousCertificate: session.record.pem)
        }
        _ = try await store.enroll(
            deviceID: device.id, certificate: issued.record,
            attestation: (method: device.attestationMethod ?? "mtls", level: device.assuranceLevel ?? 1),
            consumeToken: false, outbox: outbox,
            audit: [
                certificates.issuanceAudit(issued.record, actor: actor),
                .init(
                    actor: actor, action: "certificate.renewed", subject: device.id,
                    details: ["serial": issued.record.serial, "previous": session.record.serial, "method": "mtls"]),
            ])
        certificates.recordIssuanceMetrics(profile: profile.name, since: started)
        certificates.metrics.renewal(kind: "mtls")
        return DeviceAPI.EnrollResponse(
            status: Device.State.enrolled.rawValue, serial: issued.record.serial, certificateChain: issued.chainPEM,
            notAfter: issued.record.notAfter, provisioning: try await provisioning(of: device.id, connector: connector))
    }

    /// When the device presenting its certificate should renew.
    public func renewalInfo(clientCertificate: [UInt8]?, now: Date = Date()) async throws -> DeviceAPI.RenewalInfo {
        let session = try await certificateSession(clientCertificate: clientCertificate, now: now)
        let record = session.record
        var renewAfter = session.group.policy.renewalOpens(
            issuedAt: record.createdAt, notAfter: record.notAfter, serial: record.serial)
        var reason = "window"
        if let rotation = try await store.rotation(group: session.group.name), record.createdAt < rotation.startedAt {
            let position = try await store.rotationPosition(deviceID: session.device.id, group: session.group.name)
            let slot = rotation.startedAt + Double(position) / Double(max(1, rotation.perMinute)) * 60
            if slot < renewAfter {
                renewAfter = slot
                reason = "rotation"
            }
        }
        return DeviceAPI.RenewalInfo(
            deviceId: session.device.id, serial: record.serial, notAfter: record.notAfter, renewAfter: renewAfter,
            reason: reason,
            provisioning: try await provisioning(
                of: session.device.id, connector: try await connector(of: session.group)))
    }

    // MARK: Quarantine, re-authorization, retirement

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
                outbox: try await azureChange(.disable, deviceID: device.id, group: group.name),
                audit: .init(actor: actor, action: "device.quarantined", subject: device.id, details: details), at: now)
        )
        await certificates.statusChanged(serials, now: now)
        return quarantined
    }

    /// Lets a quarantined device attest again: it returns to `registered` (a DDK device whose
    /// attributes changed may register new keys), its held certificates are released or revoked
    /// (the group's `releaseHeldOnReauthorize`), its enrollment and hub identity are enabled again,
    /// and its next enrollment issues a new certificate that replaces the one in Azure. With
    /// `allowReregistration` its DDK keys are forgotten and it registers again (its attributes changed:
    /// a new board, a new disk); the registration is audited as a re-registration.
    public func reauthorize(deviceID: String, actor: String, allowReregistration: Bool = false, now: Date = Date())
        async throws -> Device
    {
        let (device, group) = try await deviceAndGroup(deviceID)
        let change: CertificateChange = group.policy.releaseHeldOnReauthorize ? .release : .revokeHeld(.superseded)
        let (reauthorized, serials) = try await store.changeDevice(
            DeviceChange(
                deviceID: device.id, event: .reauthorized, reason: "reauthorized by \(actor)", certificates: change,
                outbox: try await azureChange(.enable, deviceID: device.id, group: group.name),
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
                outbox: try await azureChange(.delete, deviceID: device.id, group: group.name),
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
}
