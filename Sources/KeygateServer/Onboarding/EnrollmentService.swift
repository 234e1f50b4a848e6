public import Foundation
public import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateStore
import X509

/// The device API (`/device/v1`): challenges, DDK registration, attested enrollment, renewal over
/// mTLS, status and fork proofs.
///
/// One request reads its device and group once and checks its CSR once; a certificate, the device's
/// new state, its outbox item for Azure and its audit events are recorded in one transaction before
/// the answer leaves.
public struct EnrollmentService: Sendable {
    let store: any ServerStore
    let sessions: DeviceSessions
    let certificates: CertificateService
    let provisioning: ProvisioningService
    let lifecycle: LifecycleService

    /// Binds signatures to this Keygate deployment: `keygate:` + the issuing CA's key identifier.
    public var audience: String { sessions.audience }

    // MARK: Challenge

    /// A challenge for the device's next message (`register` before DDK keys exist, else `authenticate`).
    /// `client` is the caller's address (rate limits and failure counts are kept per address).
    public func challenge(deviceID: String, client: String = "local", now: Date = Date()) async throws
        -> DeviceAPI.Challenge
    {
        try await sessions.challenge(for: try await sessions.admit(deviceID, client: client, now: now), now: now)
    }

    // MARK: DDK registration

    /// Registers a device's first two DDK public keys (epoch 0 and 1), checked against its pinned key
    /// and its one-time enrollment token when the allowlist holds them.
    public func register(_ request: DeviceAPI.RegisterRequest, client: String = "local", now: Date = Date())
        async throws -> DeviceAPI.StatusResponse
    {
        let admitted = try await sessions.admit(request.deviceId, client: client, now: now)
        let (device, group) = (admitted.device, admitted.group)
        guard group.policy.attestationMethods.contains(AttestationMethod.ddk.rawValue) else {
            throw KeygateError(.attestationMethodNotAllowed, "group \(group.name) does not accept DDK")
        }
        let challenge = try await sessions.consume(request.challengeId, device: device, now: now)
        guard device.state == .allowlisted, challenge.epoch == 0 else {
            throw KeygateError(.alreadyRegistered, "\(device.id) is already registered; authenticate instead")
        }
        guard let p0 = Base64URL.decode(request.publicKey), let p1 = Base64URL.decode(request.nextPublicKey),
            let signature = Base64URL.decode(request.signature), DDKProtocol.isValidPublicKey(p0),
            DDKProtocol.isValidPublicKey(p1), p0 != p1
        else {
            throw KeygateError(
                .malformedInput, "publicKey and nextPublicKey must be distinct P-256 SPKI keys, base64url")
        }
        let message = DDKProtocol.registrationMessage(
            audience: audience, deviceID: device.id, nonce: challenge.nonce, publicKey: p0, nextPublicKey: p1)
        guard DDKProtocol.verify(signature: signature, message: message, publicKey: p0) else {
            throw try await sessions.fail(
                device, .attestationFailed, "the registration signature does not verify", client: client, now: now)
        }
        let entry = try await store.allowlistEntry(deviceID: device.id)
        // Registering again (an operator re-authorized the device with allowReregistration) needs no
        // new enrollment token: the operator's decision stands for it.
        let reregistration = try await store.reregistrationAllowed(deviceID: device.id)
        if let pinned = entry?.pinnedKey, Base64URL.decode(pinned) != p0 {
            throw try await sessions.fail(
                device, .pinnedKeyMismatch, "the epoch-0 key is not the one pinned at staging", client: client,
                now: now)
        }
        // The group's first-contact policy: nobody who merely knows the ID registers the device first.
        if !reregistration, entry?.pinnedKey == nil {
            if group.policy.firstContact == "pinned" {
                throw KeygateError(
                    .pinnedKeyRequired,
                    "group \(group.name) requires the device's epoch-0 key pinned on the allowlist (keygate allowlist add --pin-key)"
                )
            }
            if group.policy.firstContact == "token", entry?.tokenHash == nil {
                throw KeygateError(
                    .enrollmentTokenRequired,
                    "group \(group.name) requires a one-time enrollment token or a pinned key; stage \(device.id) again with one"
                )
            }
        }
        if let tokenHash = entry?.tokenHash, !reregistration {
            guard let token = request.enrollmentToken, !(entry?.tokenUsed ?? false),
                AdminTokenSecret.hash(token) == tokenHash
            else {
                throw try await sessions.fail(
                    device, .enrollmentTokenInvalid, "a valid one-time enrollment token is required", client: client,
                    now: now)
            }
        }
        let registered = try await store.registerDDK(
            deviceID: device.id, publicKey: p0, nextPublicKey: p1,
            audit: .init(
                actor: "device:\(device.id)", action: "device.registered", subject: device.id,
                details: [
                    "method": "ddk", "pinned": entry?.pinnedKey == nil ? "no" : "yes",
                    "reregistration": reregistration ? "yes" : "no",
                ]))
        return try await provisioning.deviceStatus(registered, group: group)
    }

    // MARK: Enrollment

    /// An attested CSR: the certificate chain, or `pendingApproval`. An enrolled device that
    /// re-attests renews (within its group's grace after expiry).
    public func enroll(_ request: DeviceAPI.EnrollRequest, client: String = "local", now: Date = Date()) async throws
        -> DeviceAPI.EnrollResponse
    {
        guard let csr = DeviceAPI.payloadIfPEM(request.csr) else {
            throw KeygateError(.malformedPEM, "csr must be a PEM CERTIFICATE REQUEST")
        }
        // The CSR is checked against the group's policy before the session changes anything (DDK epoch, state).
        let admitted = try await sessions.admit(request.deviceId, client: client, now: now)
        let policy = admitted.group.policy
        let profile = try policy.certificateProfile()
        let checked = try certificates.check(csr, profile: profile)
        // An enrolled device re-attesting renews; past its group's grace after expiry it needs an
        // operator's re-authorization first. Checked before the session moves the DDK epoch.
        let current = try await currentCertificateWithinGrace(admitted.device, policy: policy, now: now)
        // A one-time enrollment token guards the first contact, whatever the method.
        let consumeToken = try await sessions.checkEnrollmentToken(
            request.enrollmentToken, for: admitted.device, client: client, now: now)
        let session = try await sessions.authenticate(
            admitted, challengeID: request.challengeId, attestation: request.attestation, payload: csr,
            client: client, now: now)
        return try await completeEnrollment(
            checked, profile: profile, device: session.device, group: session.group,
            attestation: (method: session.method.rawValue, level: session.method.assuranceLevel), current: current,
            consumeToken: consumeToken, now: now)
    }

    /// The enrolled device's newest certificate (its enrollment is then a renewal), or `nil`; refuses,
    /// audited, a device whose certificate expired longer ago than its group's grace.
    func currentCertificateWithinGrace(_ device: Device, policy: Group.Policy, now: Date) async throws
        -> CertificateRecord?
    {
        let current = device.state == .enrolled ? try await store.latestCertificate(deviceID: device.id) : nil
        if let current, current.notAfter + policy.renewalGrace < now {
            _ = try await store.appendAudit(
                .init(
                    actor: "device:\(device.id)", action: "device.refused", subject: device.id,
                    details: ["reason": "renewalGraceExpired", "serial": current.serial]))
            throw KeygateError(
                .renewalGraceExpired,
                "the certificate of \(device.id) expired more than \(policy.renewAfterExpiryDays) day(s) ago; an operator must re-authorize it (keygate device reauthorize)"
            )
        }
        return current
    }

    /// What follows a successful attestation: `pendingApproval` in a group with manual approval (until an
    /// operator approves), else the certificate, recorded with the device's state, outbox and audit.
    func completeEnrollment(
        _ checked: CSRPolicy.Checked, profile: CertificateProfile, device: Device, group: Group,
        attestation: (method: String, level: Int), current: CertificateRecord?, consumeToken: Bool, now: Date
    ) async throws -> DeviceAPI.EnrollResponse {
        var device = device
        if group.policy.requiresManualApproval && device.state != .approved && device.state != .enrolled {
            if device.state != .pendingApproval {
                device = try await store.transition(
                    deviceID: device.id, event: .awaitApproval, reason: "manual approval", attestation: attestation,
                    audit: .init(
                        actor: "device:\(device.id)", action: "device.pendingApproval", subject: device.id,
                        details: ["method": attestation.method]))
            }
            return DeviceAPI.EnrollResponse(status: Device.State.pendingApproval.rawValue)
        }
        // A renewal keeps the previous certificate as the enrollment's secondary until it expires.
        let previous = current.flatMap { $0.status == .active && $0.notAfter > now ? $0 : nil }
        let response = try await issueAndRecord(
            checked, profile: profile, for: device, group: group, previous: previous,
            attestation: attestation, consumeToken: consumeToken,
            event: .init(
                actor: "device:\(device.id)", action: current == nil ? "device.enrolled" : "certificate.renewed",
                subject: device.id,
                details: [
                    "method": attestation.method, "assurance": "\(attestation.level)",
                    "previous": current?.serial ?? "",
                ]))
        if let current { certificates.metrics.renewal(kind: current.notAfter < now ? "afterExpiry" : "attested") }
        return response
    }

    /// A read-only session: proves identity and returns the device's state.
    public func status(_ request: DeviceAPI.StatusRequest, client: String = "local", now: Date = Date()) async throws
        -> DeviceAPI.StatusResponse
    {
        let session = try await sessions.authenticate(
            try await sessions.admit(request.deviceId, client: client, now: now), challengeID: request.challengeId,
            attestation: request.attestation, payload: DeviceAPI.statusPayload, client: client, now: now)
        return try await provisioning.deviceStatus(session.device, group: session.group)
    }

    // MARK: Renewal (mTLS)

    /// Renews the certificate presented over mTLS: a new certificate for the CSR (a new key unless
    /// the group allows reuse); the Azure enrollment gets it as primary and keeps the presented one
    /// as secondary until that one expires.
    public func renew(
        _ request: DeviceAPI.RenewRequest, clientCertificate: [UInt8]?, client: String = "local", now: Date = Date()
    ) async throws -> DeviceAPI.EnrollResponse {
        guard let csr = DeviceAPI.payloadIfPEM(request.csr) else {
            throw KeygateError(.malformedPEM, "csr must be a PEM CERTIFICATE REQUEST")
        }
        let session = try await sessions.certificateSession(
            clientCertificate: clientCertificate, client: client, now: now)
        let device = session.device
        if let claimed = request.deviceId, claimed != device.id {
            throw KeygateError(
                .clientCertificateInvalid, "the client certificate belongs to \(device.id), not \(claimed)")
        }
        let policy = session.group.policy
        let profile = try policy.certificateProfile()
        let checked = try certificates.check(csr, profile: profile)
        if !policy.allowKeyReuse,
            checked.csr.publicKey.subjectPublicKeyInfoBytes == session.certificate.publicKey.subjectPublicKeyInfoBytes
        {
            throw KeygateError(.keyReuse, "a renewal needs a new key; the CSR reuses the current certificate's key")
        }
        let response = try await issueAndRecord(
            checked, profile: profile, for: device, group: session.group, previous: session.record,
            attestation: (method: device.attestationMethod ?? "mtls", level: device.assuranceLevel ?? 1),
            consumeToken: false,
            event: .init(
                actor: "device:\(device.id)", action: "certificate.renewed", subject: device.id,
                details: ["previous": session.record.serial, "method": "mtls"]))
        certificates.metrics.renewal(kind: "mtls")
        return response
    }

    /// When the device presenting its certificate should renew.
    public func renewalInfo(clientCertificate: [UInt8]?, client: String = "local", now: Date = Date()) async throws
        -> DeviceAPI.RenewalInfo
    {
        let session = try await sessions.certificateSession(
            clientCertificate: clientCertificate, client: client, now: now)
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
            provisioning: try await provisioning.status(
                of: session.device.id, connector: try await provisioning.connector(of: session.group)))
    }

    /// Signs `checked` for the device and records, in one transaction, the certificate, the device's
    /// enrolled state, the outbox item that puts the certificate into Azure (the previous one kept as
    /// secondary) and the audit events (`event` gains the new serial).
    func issueAndRecord(
        _ checked: CSRPolicy.Checked, profile: CertificateProfile, for device: Device, group: Group,
        previous: CertificateRecord?, attestation: (method: String, level: Int), consumeToken: Bool,
        event: AuditEvent.Draft
    ) async throws -> DeviceAPI.EnrollResponse {
        let issued = try await certificates.sign(
            checked, profile: profile, identity: CertificateIdentity(commonName: device.id),
            validity: group.policy.validity, deviceID: device.id)
        let connector = try await provisioning.connector(of: group)
        let outbox = connector.map {
            OutboxItem(
                connector: $0.name, deviceID: device.id, action: .enroll, certificate: issued.record.pem,
                previousCertificate: previous?.pem)
        }
        var event = event
        event.details["serial"] = issued.record.serial
        _ = try await store.enroll(
            deviceID: device.id, certificate: issued.record, attestation: attestation, consumeToken: consumeToken,
            outbox: outbox,
            audit: [certificates.issuanceAudit(issued.record, actor: "device:\(device.id)"), event])
        return DeviceAPI.EnrollResponse(
            status: Device.State.enrolled.rawValue, serial: issued.record.serial, certificateChain: issued.chainPEM,
            notAfter: issued.record.notAfter,
            provisioning: provisioning.justQueued(deviceID: device.id, connector: connector))
    }

    // MARK: Fork proof

    /// After `forkProofRequired`: if the device proves an earlier epoch's key but claims another
    /// next key than the one on record, two parties have held the identity; it is quarantined
    /// (`cloneSuspected`) and its certificates revoked.
    public func forkProof(_ request: DeviceAPI.ForkProofRequest, client: String = "local", now: Date = Date())
        async throws -> Never
    {
        let admitted = try await sessions.admit(request.deviceId, client: client, now: now)
        let (device, group) = (admitted.device, admitted.group)
        guard group.policy.attestationMethods.contains(AttestationMethod.ddk.rawValue) else {
            throw KeygateError(.attestationMethodNotAllowed, "group \(group.name) does not accept DDK")
        }
        let challenge = try await sessions.consume(request.challengeId, device: device, now: now)
        // The proof may be for any earlier epoch k: the device proves K_k and states the P_{k+1} it
        // announced then. An attacker who ran several sessions moved the record past k+1, so the
        // device proves its own last epoch (which the agent remembers), not only e-1.
        let proofEpoch = request.proofEpoch
        guard proofEpoch >= 0, proofEpoch < device.ddkEpoch,
            let proven = try await store.ddkPublicKey(deviceID: device.id, epoch: proofEpoch),
            let recorded = try await store.ddkPublicKey(deviceID: device.id, epoch: proofEpoch + 1),
            let claimed = Base64URL.decode(request.claimedPublicKey),
            let signature = Base64URL.decode(request.signature)
        else {
            throw try await sessions.fail(
                device, .attestationFailed, "the fork proof does not match this device's epochs", client: client,
                now: now)
        }
        let message = DDKProtocol.forkProofMessage(
            audience: audience, deviceID: device.id, nonce: challenge.nonce, proofEpoch: UInt64(proofEpoch),
            claimedPublicKey: claimed)
        guard DDKProtocol.verify(signature: signature, message: message, publicKey: proven), claimed != recorded
        else {
            throw try await sessions.fail(
                device, .attestationFailed, "the device could not prove its identity", client: client, now: now)
        }
        let evidence =
            "the device proved epoch \(proofEpoch) but holds a different epoch-\(proofEpoch + 1) key than the one another party registered"
        _ = try await lifecycle.quarantine(
            device: device, group: group, reason: "cloneSuspected", actor: "system",
            details: ["epoch": "\(device.ddkEpoch)", "provenEpoch": "\(proofEpoch)", "evidence": evidence], now: now)
        throw KeygateError(
            .deviceQuarantined, "two parties have used this identity; the device is quarantined (cloneSuspected)")
    }
}

extension Group.Policy {
    /// The certificate profile the group's devices get, limited to the group's key algorithms.
    func certificateProfile() throws -> CertificateProfile {
        var profile = try CertificateProfile.named(self.profile)
        profile.allowedKeyAlgorithms = Set(keyAlgorithms.compactMap(KeyAlgorithm.init(rawValue:)))
        return profile
    }
}
