import Crypto
public import Foundation
public import KeygateAttestation
import KeygateDomain
import KeygatePKI
public import KeygateStore
import SwiftASN1
import X509

/// The device side of Keygate: challenges, DDK registration, attested enrollment, fork proofs.
///
/// Every refusal that concerns a known device is counted and audited; a device ID that is not on
/// the allowlist leaves nothing but an audit event.
public final class OnboardingService: Sendable {
    public let store: any ServerStore
    public let certificates: CertificateService
    public let secrets: SecretBox?
    /// Binds signatures to this Keygate deployment: `keygate:` + the issuing CA's key identifier.
    public let audience: String
    public let challengeLifetime: TimeInterval
    public let lockAfterFailures: Int
    public let lockDuration: TimeInterval

    public init(
        store: any ServerStore, certificates: CertificateService, secrets: SecretBox?,
        challengeLifetime: TimeInterval = 60,
        lockAfterFailures: Int = 5, lockDuration: TimeInterval = 15 * 60
    ) {
        self.store = store
        self.certificates = certificates
        self.secrets = secrets
        self.audience = "keygate:" + Hex.encode(certificates.authority.keyIdentifier)
        self.challengeLifetime = challengeLifetime
        self.lockAfterFailures = lockAfterFailures
        self.lockDuration = lockDuration
    }

    // MARK: Challenge

    public func challenge(deviceID: String, now: Date = Date()) async throws -> DeviceAPI.Challenge {
        let (device, group) = try await admit(deviceID, now: now)
        let methods = group.policy.attestationMethods.compactMap(AttestationMethod.init(rawValue:))
        let register = methods.contains(.ddk) && device.state == .allowlisted
        var nonce = [UInt8](repeating: 0, count: 32)
        var id = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<32 { nonce[i] = rng.next() }
        for i in 0..<16 { id[i] = rng.next() }
        let challenge = Challenge(
            id: Base64URL.encode(id), deviceID: deviceID, nonce: nonce, epoch: register ? 0 : device.ddkEpoch,
            expiresAt: now + challengeLifetime)
        try await store.saveChallenge(challenge)
        return DeviceAPI.Challenge(
            challengeId: challenge.id, nonce: Base64URL.encode(nonce), epoch: challenge.epoch, audience: audience,
            expiresAt: challenge.expiresAt, action: register ? "register" : "authenticate", methods: methods)
    }

    // MARK: DDK registration

    public func register(_ request: DeviceAPI.RegisterRequest, now: Date = Date()) async throws
        -> DeviceAPI.StatusResponse
    {
        let (device, group) = try await admit(request.deviceId, now: now)
        guard group.policy.attestationMethods.contains(AttestationMethod.ddk.rawValue) else {
            throw KeygateError(.attestationMethodNotAllowed, "group \(group.name) does not accept DDK")
        }
        let challenge = try await consume(request.challengeId, device: device, now: now)
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
            throw try await fail(device, .attestationFailed, "the registration signature does not verify", now: now)
        }
        let entry = try await store.allowlistEntry(deviceID: device.id)
        // Registering again (an operator re-authorized the device with allowReregistration) needs no
        // new enrollment token: the operator's decision stands for it.
        let reregistration = try await store.reregistrationAllowed(deviceID: device.id)
        if let pinned = entry?.pinnedKey, Base64URL.decode(pinned) != p0 {
            throw try await fail(
                device, .pinnedKeyMismatch, "the epoch-0 key is not the one pinned at staging", now: now)
        }
        if let tokenHash = entry?.tokenHash, !reregistration {
            guard let token = request.enrollmentToken, !(entry?.tokenUsed ?? false),
                AdminTokenSecret.hash(token) == tokenHash
            else {
                throw try await fail(
                    device, .enrollmentTokenInvalid, "a valid one-time enrollment token is required", now: now)
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
        return try await status(of: registered)
    }

    // MARK: Enrollment

    /// An attested CSR: the certificate chain, or `pendingApproval`.
    public func enroll(_ request: DeviceAPI.EnrollRequest, now: Date = Date()) async throws -> DeviceAPI.EnrollResponse
    {
        let started = ContinuousClock.now
        guard let csr = DeviceAPI.payloadIfPEM(request.csr) else {
            throw KeygateError(.malformedPEM, "csr must be a PEM CERTIFICATE REQUEST")
        }
        // Check the CSR against the group's policy before the session changes anything (DDK epoch, state).
        let (admitted, admittedGroup) = try await admit(request.deviceId, now: now)
        _ = try certificates.csrPolicy.check(
            csr, allowed: Set(admittedGroup.policy.keyAlgorithms.compactMap(KeyAlgorithm.init(rawValue:))))
        // An enrolled device re-attesting renews; past its group's grace after expiry it needs an
        // operator's re-authorization first. Checked before the session moves the DDK epoch.
        let current = admitted.state == .enrolled ? try await store.latestCertificate(deviceID: admitted.id) : nil
        if let current, current.notAfter + admittedGroup.policy.renewalGrace < now {
            _ = try await store.appendAudit(
                .init(
                    actor: "device:\(admitted.id)", action: "device.refused", subject: admitted.id,
                    details: ["reason": "renewalGraceExpired", "serial": current.serial]))
            throw KeygateError(
                .renewalGraceExpired,
                "the certificate of \(admitted.id) expired more than \(admittedGroup.policy.renewAfterExpiryDays) day(s) ago; an operator must re-authorize it (keygate device reauthorize)"
            )
        }
        // A one-time enrollment token guards the first contact, whatever the method.
        var consumeToken = false
        if admitted.state == .allowlisted, let entry = try await store.allowlistEntry(deviceID: admitted.id),
            let tokenHash = entry.tokenHash
        {
            guard let token = request.enrollmentToken, !entry.tokenUsed, AdminTokenSecret.hash(token) == tokenHash
            else {
                throw try await fail(
                    admitted, .enrollmentTokenInvalid, "a valid one-time enrollment token is required", now: now)
            }
            consumeToken = true
        }
        let session = try await authenticate(
            deviceID: request.deviceId, challengeID: request.challengeId, attestation: request.attestation,
            payload: csr,
            now: now)
        var device = session.device
        let attestation = (method: session.method.rawValue, level: session.method.assuranceLevel)
        if session.group.policy.requiresManualApproval && device.state != .approved && device.state != .enrolled {
            if device.state != .pendingApproval {
                device = try await store.transition(
                    deviceID: device.id, event: .awaitApproval, reason: "manual approval", attestation: attestation,
                    audit: .init(
                        actor: "device:\(device.id)", action: "device.pendingApproval", subject: device.id,
                        details: ["method": attestation.method]))
            }
            return DeviceAPI.EnrollResponse(status: Device.State.pendingApproval.rawValue)
        }
        var profile = try CertificateProfile.named(session.group.policy.profile)
        profile.allowedKeyAlgorithms = Set(session.group.policy.keyAlgorithms.compactMap(KeyAlgorithm.init(rawValue:)))
        let issued = try await certificates.sign(
            csr: csr, profile: profile, identity: CertificateIdentity(commonName: device.id),
            validity: session.group.policy.validity, deviceID: device.id)
        let actor = "device:\(device.id)"
        let connector = try await connector(of: session.group)
        // A renewal keeps the previous certificate as the enrollment's secondary until it expires.
        let previous = current.flatMap { $0.status == .active && $0.notAfter > now ? $0.pem : nil }
        let outbox = connector.map {
            OutboxItem(
                connector: $0.name, deviceID: device.id, action: .enroll, certificate: issued.record.pem,
                previousCertificate: previous)
        }
        _ = try await store.enroll(
            deviceID: device.id, certificate: issued.record, attestation: attestation, consumeToken: consumeToken,
            outbox: outbox,
            audit: [
                certificates.issuanceAudit(issued.record, actor: actor),
                .init(
                    actor: actor, action: current == nil ? "device.enrolled" : "certificate.renewed",
                    subject: device.id,
                    details: [
                        "serial": issued.record.serial, "method": attestation.method,
                        "assurance": "\(attestation.level)", "previous": current?.serial ?? "",
                    ]),
            ])
        if current != nil { certificates.metrics.renewal(kind: current!.notAfter < now ? "afterExpiry" : "attested") }
        certificates.recordIssuanceMetrics(profile: profile.name, since: started)
        return DeviceAPI.EnrollResponse(
            status: Device.State.enrolled.rawValue, serial: issued.record.serial, certificateChain: issued.chainPEM,
            notAfter: issued.record.notAfter, provisioning: try await provisioning(of: device.id, connector: connector))
    }

    /// A read-only session: proves identity and returns the device's state.
    public func status(_ request: DeviceAPI.StatusRequest, now: Date = Date()) async throws -> DeviceAPI.StatusResponse
    {
        let session = try await authenticate(
            deviceID: request.deviceId, challengeID: request.challengeId, attestation: request.attestation,
            payload: DeviceAPI.statusPayload, now: now)
        return try await status(of: session.device)
    }

    // MARK: Fork proof

    /// After `forkProofRequired`: if the device proves the previous epoch's key but claims another
    /// current key than the one on record, two parties have held the identity.
    public func forkProof(_ request: DeviceAPI.ForkProofRequest, now: Date = Date()) async throws -> Never {
        let (device, group) = try await admit(request.deviceId, now: now)
        guard group.policy.attestationMethods.contains(AttestationMethod.ddk.rawValue) else {
            throw KeygateError(.attestationMethodNotAllowed, "group \(group.name) does not accept DDK")
        }
        let challenge = try await consume(request.challengeId, device: device, now: now)
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
            throw try await fail(
                device, .attestationFailed, "the fork proof does not match this device's epochs", now: now)
        }
        let message = DDKProtocol.forkProofMessage(
            audience: audience, deviceID: device.id, nonce: challenge.nonce, proofEpoch: UInt64(proofEpoch),
            claimedPublicKey: claimed)
        guard DDKProtocol.verify(signature: signature, message: message, publicKey: proven), claimed != recorded
        else {
            throw try await fail(device, .attestationFailed, "the device could not prove its identity", now: now)
        }
        let evidence =
            "the device proved epoch \(proofEpoch) but holds a different epoch-\(proofEpoch + 1) key than the one another party registered"
        _ = try await quarantine(
            device: device, group: group, reason: "cloneSuspected", actor: "system",
            details: ["epoch": "\(device.ddkEpoch)", "provenEpoch": "\(proofEpoch)", "evidence": evidence], now: now)
        throw KeygateError(
            .deviceQuarantined, "two parties have used this identity; the device is quarantined (cloneSuspected)")
    }

    // MARK: Sessions

    struct Session {
        var device: Device
        var group: Group
        var method: AttestationMethod
    }

    /// Checks a challenge-bound attestation by the method it names; a DDK session moves the epoch.
    func authenticate(
        deviceID: String, challengeID: String, attestation: DeviceAPI.Attestation, payload: [UInt8], now: Date
    ) async throws -> Session {
        let (device, group) = try await admit(deviceID, now: now)
        let challenge = try await consume(challengeID, device: device, now: now)
        let method = attestation.method
        guard group.policy.attestationMethods.contains(method.rawValue) else {
            throw KeygateError(.attestationMethodNotAllowed, "group \(group.name) does not accept \(method.rawValue)")
        }
        // A device that registered DDK keys keeps proving with them (or something stronger): a weaker
        // method the group also accepts must not take over an identity that has keys.
        guard device.ddkEpoch == 0 || method.assuranceLevel >= AttestationMethod.ddk.assuranceLevel else {
            throw KeygateError(
                .attestationMethodNotAllowed, "\(device.id) has DDK keys; it must attest with DDK or a stronger method")
        }
        guard method.assuranceLevel >= group.policy.minimumAssurance else {
            throw KeygateError(
                .assuranceTooLow,
                "\(method.rawValue) gives assurance \(method.assuranceLevel); group \(group.name) needs \(group.policy.minimumAssurance)"
            )
        }
        switch method {
        case .ddk:
            guard device.state != .allowlisted, device.ddkEpoch >= 1 else {
                throw KeygateError(.notRegistered, "\(device.id) must register its DDK keys first")
            }
            guard challenge.epoch == device.ddkEpoch, attestation.epoch == device.ddkEpoch,
                let next = attestation.nextPublicKey.flatMap(Base64URL.decode), DDKProtocol.isValidPublicKey(next),
                let signature = attestation.signature.flatMap(Base64URL.decode),
                let expected = try await store.ddkPublicKey(deviceID: device.id, epoch: device.ddkEpoch)
            else {
                throw KeygateError(
                    .malformedInput, "a DDK attestation needs epoch \(device.ddkEpoch), nextPublicKey and signature")
            }
            let message = DDKProtocol.authenticationMessage(
                audience: audience, deviceID: device.id, nonce: challenge.nonce, epoch: UInt64(device.ddkEpoch),
                nextPublicKey: next, payload: payload)
            guard DDKProtocol.verify(signature: signature, message: message, publicKey: expected) else {
                let counted = try await fail(
                    device, .attestationFailed, "DDK signature mismatch at epoch \(device.ddkEpoch)", now: now)
                if counted.code == .deviceLocked { throw counted }
                throw KeygateError(
                    .forkProofRequired,
                    "the signature does not match epoch \(device.ddkEpoch); send a fork proof signed with the previous epoch's key"
                )
            }
            let advanced = try await store.advanceDDK(deviceID: device.id, from: device.ddkEpoch, nextPublicKey: next)
            return Session(device: advanced, group: group, method: .ddk)
        case .x509:
            guard let chain = attestation.certificateChain,
                let signature = attestation.signature.flatMap(Base64URL.decode)
            else {
                throw KeygateError(.malformedInput, "an x509 attestation needs certificateChain and signature")
            }
            let trusted = group.policy.bootstrapCAs.compactMap { try? Certificate(pemEncoded: $0) }
            do {
                _ = try await BootstrapAttestation.verify(
                    chainPEM: chain, signature: signature, trustedCAs: trusted, deviceID: device.id, audience: audience,
                    nonce: challenge.nonce, payload: payload, now: now)
            } catch let error as BootstrapRejected {
                throw try await fail(device, .attestationFailed, error.reason, now: now)
            } catch let error as AttestationError {
                throw KeygateError(.malformedInput, error.description)
            }
            return Session(device: try await clearFailures(device), group: group, method: .x509)
        case .symmetricKey:
            guard let mac = attestation.mac.flatMap(Base64URL.decode) else {
                throw KeygateError(.malformedInput, "a symmetric-key attestation needs mac")
            }
            guard let sealed = group.policy.sealedGroupKey, let secrets else {
                throw KeygateError(.invalidPolicy, "group \(group.name) has no usable group key")
            }
            let valid = try SymmetricKeyAttestation.verify(
                mac: mac, groupKey: try secrets.open(sealed), deviceID: device.id, audience: audience,
                nonce: challenge.nonce,
                payload: payload)
            guard valid else { throw try await fail(device, .attestationFailed, "the HMAC does not verify", now: now) }
            return Session(device: try await clearFailures(device), group: group, method: .symmetricKey)
        }
    }

    /// The device and its group, if the device may open a session at all.
    func admit(_ deviceID: String, now: Date) async throws -> (Device, Group) {
        guard AllowlistEntry.isValidDeviceID(deviceID) else {
            throw KeygateError(.invalidDeviceID, "device IDs are 1 to 128 letters, digits and : . _ -")
        }
        guard let device = try await store.device(id: deviceID) else { throw try await notAllowlisted(deviceID) }
        guard device.state.acceptsSessions else { throw refusal(for: device) }
        if let until = device.lockedUntil, until > now {
            throw KeygateError(
                .deviceLocked, "too many failed attestations; \(device.id) is locked for a while",
                retryAfter: Int(until.timeIntervalSince(now).rounded(.up)))
        }
        guard let group = try await store.group(named: device.group) else {
            throw KeygateError(.groupNotFound, "the group \(device.group) of \(device.id) does not exist")
        }
        return (device, group)
    }

    private func consume(_ challengeID: String, device: Device, now: Date) async throws -> Challenge {
        guard challengeID.count <= 64,
            let challenge = try await store.consumeChallenge(id: challengeID, deviceID: device.id, now: now)
        else {
            throw KeygateError(.challengeInvalid, "the challenge is unknown, used, expired or issued to another device")
        }
        return challenge
    }

    private func notAllowlisted(_ deviceID: String) async throws -> KeygateError {
        _ = try await store.appendAudit(
            .init(
                actor: "device:\(deviceID)", action: "device.refused", subject: deviceID,
                details: ["reason": "deviceNotAllowlisted"]))
        return KeygateError(.deviceNotAllowlisted, "\(deviceID) is not on the allowlist")
    }

    private func refusal(for device: Device) -> KeygateError {
        device.state == .retired
            ? KeygateError(.deviceRetired, "\(device.id) is retired")
            : KeygateError(
                .deviceQuarantined, "\(device.id) is quarantined (\(device.stateReason ?? "no reason given"))")
    }

    /// Counts a failed attestation (and locks after too many), then returns the error to throw.
    func fail(_ device: Device, _ code: KeygateError.Code, _ reason: String, now: Date) async throws
        -> KeygateError
    {
        let updated = try await store.recordAttestationFailure(
            deviceID: device.id, lockAfter: lockAfterFailures, lockFor: lockDuration, now: now,
            audit: .init(
                actor: "device:\(device.id)", action: "device.attestationFailed", subject: device.id,
                details: ["code": code.rawValue, "reason": reason]))
        if updated.isLocked(at: now) {
            return KeygateError(.deviceLocked, "\(reason); \(device.id) is now locked", retryAfter: Int(lockDuration))
        }
        return KeygateError(code, reason)
    }

    private func clearFailures(_ device: Device) async throws -> Device {
        guard device.failedAttempts > 0 else { return device }
        return try await store.clearAttestationFailures(deviceID: device.id)
    }

    func status(of device: Device) async throws -> DeviceAPI.StatusResponse {
        let latest = try await store.certificates(matching: .init(status: .active, deviceID: device.id, limit: 1000))
            .last
        var provisioning: DeviceAPI.Provisioning?
        if let group = try await store.group(named: device.group), let connector = try await connector(of: group) {
            provisioning = try await self.provisioning(of: device.id, connector: connector)
        }
        return DeviceAPI.StatusResponse(
            deviceId: device.id, state: device.state.rawValue, group: device.group, epoch: device.ddkEpoch,
            certificateSerial: latest?.serial, certificateNotAfter: latest?.notAfter, provisioning: provisioning)
    }

    /// The outbox item for a change in Azure, when the device's group has a connector.
    func azureChange(_ action: OutboxItem.Action, deviceID: String, group: String) async throws -> [OutboxItem] {
        guard let group = try await store.group(named: group), let connector = try await connector(of: group) else {
            return []
        }
        return [OutboxItem(connector: connector.name, deviceID: deviceID, action: action)]
    }

    // MARK: Azure

    /// The group's connector, if it names one.
    func connector(of group: Group) async throws -> Connector? {
        guard let name = group.policy.connector else { return nil }
        guard let connector = try await store.connector(named: name) else {
            throw KeygateError(
                .connectorNotFound, "group \(group.name) names the connector \(name), which does not exist")
        }
        return connector
    }

    /// Where the device registers and whether its enrollment reached Azure.
    func provisioning(of deviceID: String, connector: Connector?) async throws -> DeviceAPI.Provisioning? {
        guard let connector else { return nil }
        let confirmed = try await store.enrollmentConfirmed(deviceID: deviceID) ?? false
        let lastError =
            confirmed ? nil : try await store.outboxItems(state: nil, deviceID: deviceID, limit: 1).first?.lastError
        // A connector that learned its ID scope after this read still answers with it on the next poll.
        let current = try await store.connector(named: connector.name) ?? connector
        return DeviceAPI.Provisioning(
            globalEndpoint: current.settings.globalEndpoint, idScope: current.settings.idScope,
            registrationId: deviceID, confirmed: confirmed, lastError: lastError)
    }
}
