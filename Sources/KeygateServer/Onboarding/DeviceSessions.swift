import Crypto
import Foundation
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateStore
import Logging
import SwiftASN1
import X509

/// Who is calling the device API: admission (allowlist, state, lock), challenges, and the proof a
/// device gives by attestation (DDK, X.509 bootstrap, symmetric key) or by its current certificate
/// over mTLS. Every refusal that concerns a known device is counted and audited; a device ID that is
/// not on the allowlist leaves nothing but an audit event.
///
/// A request loads its device and group once (``admit(_:now:)``) and passes them along.
struct DeviceSessions: Sendable {
    let store: any ServerStore
    let authority: CertificateAuthority
    let secrets: SecretBox?
    /// Binds signatures to this Keygate deployment: `keygate:` + the issuing CA's key identifier.
    let audience: String
    let challengeLifetime: TimeInterval
    /// Rate limits and failure counts per client address.
    let guardian: ClientGuard
    let metrics: KeygateMetrics
    let refusalLog: SampledLog

    init(
        store: any ServerStore, authority: CertificateAuthority, secrets: SecretBox?, metrics: KeygateMetrics,
        logger: Logger, guardian: ClientGuard = ClientGuard(), challengeLifetime: TimeInterval = 60
    ) {
        self.store = store
        self.authority = authority
        self.secrets = secrets
        self.audience = "keygate:" + Hex.encode(authority.keyIdentifier)
        self.challengeLifetime = challengeLifetime
        self.guardian = guardian
        self.metrics = metrics
        self.refusalLog = SampledLog(logger: logger, every: 10)
    }

    /// A device and its group, as loaded for one request.
    struct Admitted: Sendable {
        var device: Device
        var group: Group
    }

    /// A proven device: by attestation (`method`) or by its certificate.
    struct Session: Sendable {
        var device: Device
        var group: Group
        var method: AttestationMethod
    }

    /// A device proven by its current certificate: issued by this CA, recorded for the device,
    /// active and unexpired, the device enrolled and not quarantined.
    struct CertificateSession: Sendable {
        var device: Device
        var group: Group
        var record: CertificateRecord
        var certificate: Certificate
    }

    // MARK: Admission

    /// The device and its group, if the device may open a session at all, from `client` (the caller's
    /// address: one that failed too often for this device, or for any, is refused for a while).
    func admit(_ deviceID: String, client: String, now: Date) async throws -> Admitted {
        guard AllowlistEntry.isValidDeviceID(deviceID) else {
            throw KeygateError(.invalidDeviceID, "device IDs are 1 to 128 letters, digits and : . _ -")
        }
        try guardian.checkAttempt(from: client, device: deviceID, now: now)
        guard let device = try await store.device(id: deviceID) else { throw notAllowlisted(deviceID, client: client) }
        guard device.state.acceptsSessions else { throw refusal(for: device) }
        guard let group = try await store.group(named: device.group) else {
            throw KeygateError(.groupNotFound, "the group \(device.group) of \(device.id) does not exist")
        }
        return Admitted(device: device, group: group)
    }

    /// Issues a challenge: a fresh nonce the device signs into its next message.
    func challenge(for admitted: Admitted, now: Date) async throws -> DeviceAPI.Challenge {
        let (device, group) = (admitted.device, admitted.group)
        let methods = group.policy.attestationMethods.compactMap(AttestationMethod.init(rawValue:))
        let register = methods.contains(.ddk) && device.state == .allowlisted
        var rng = SystemRandomNumberGenerator()
        let nonce = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let id = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let challenge = Challenge(
            id: Base64URL.encode(id), deviceID: device.id, nonce: nonce, epoch: register ? 0 : device.ddkEpoch,
            expiresAt: now + challengeLifetime)
        try await store.saveChallenge(challenge)
        return DeviceAPI.Challenge(
            challengeId: challenge.id, nonce: Base64URL.encode(nonce), epoch: challenge.epoch, audience: audience,
            expiresAt: challenge.expiresAt, action: register ? "register" : "authenticate", methods: methods)
    }

    /// Uses up a challenge issued to this device; unknown, used, expired or foreign ones are refused.
    func consume(_ challengeID: String, device: Device, now: Date) async throws -> Challenge {
        guard challengeID.count <= 64,
            let challenge = try await store.consumeChallenge(id: challengeID, deviceID: device.id, now: now)
        else {
            throw KeygateError(.challengeInvalid, "the challenge is unknown, used, expired or issued to another device")
        }
        return challenge
    }

    // MARK: Attestation

    /// Checks a challenge-bound attestation by the method it names; a DDK session moves the epoch.
    func authenticate(
        _ admitted: Admitted, challengeID: String, attestation: DeviceAPI.Attestation, payload: [UInt8],
        client: String, now: Date
    ) async throws -> Session {
        let (device, group) = (admitted.device, admitted.group)
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
            let proven = try await authenticateDDK(
                device, challenge: challenge, attestation, payload: payload, client: client, now: now)
            guardian.recordSuccess(from: client, device: device.id)
            return Session(device: proven, group: group, method: .ddk)
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
                throw try await fail(device, .attestationFailed, error.reason, client: client, now: now)
            } catch let error as AttestationError {
                throw KeygateError(.malformedInput, error.description)
            }
            guardian.recordSuccess(from: client, device: device.id)
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
                nonce: challenge.nonce, payload: payload)
            guard valid else {
                throw try await fail(device, .attestationFailed, "the HMAC does not verify", client: client, now: now)
            }
            guardian.recordSuccess(from: client, device: device.id)
            return Session(device: try await clearFailures(device), group: group, method: .symmetricKey)
        }
    }

    /// A DDK session: the signature with the current epoch's key moves the device to the next epoch.
    private func authenticateDDK(
        _ device: Device, challenge: Challenge, _ attestation: DeviceAPI.Attestation, payload: [UInt8],
        client: String, now: Date
    ) async throws -> Device {
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
                device, .attestationFailed, "DDK signature mismatch at epoch \(device.ddkEpoch)", client: client,
                now: now)
            if counted.code == .deviceLocked { throw counted }
            throw KeygateError(
                .forkProofRequired,
                "the signature does not match epoch \(device.ddkEpoch); send a fork proof signed with the previous epoch's key"
            )
        }
        return try await store.advanceDDK(deviceID: device.id, from: device.ddkEpoch, nextPublicKey: next)
    }

    /// A valid one-time enrollment token, when the device's allowlist entry demands one.
    /// Answers whether the enrollment must consume it.
    func checkEnrollmentToken(_ token: String?, for device: Device, client: String, now: Date) async throws -> Bool {
        guard device.state == .allowlisted, let entry = try await store.allowlistEntry(deviceID: device.id),
            let tokenHash = entry.tokenHash
        else { return false }
        guard let token, !entry.tokenUsed, AdminTokenSecret.hash(token) == tokenHash else {
            throw try await fail(
                device, .enrollmentTokenInvalid, "a valid one-time enrollment token is required", client: client,
                now: now)
        }
        return true
    }

    // MARK: mTLS

    /// The session of a device presenting its newest Keygate certificate as the TLS client certificate.
    func certificateSession(clientCertificate der: [UInt8]?, client: String, now: Date) async throws
        -> CertificateSession
    {
        guard let der else {
            throw KeygateError(
                .clientCertificateRequired,
                "present the device's current certificate as the TLS client certificate (or re-attest with POST /device/v1/enroll)"
            )
        }
        guard let certificate = try? Certificate(derEncoded: der),
            certificate.issuer == authority.certificate.subject,
            authority.certificate.publicKey.isValidSignature(certificate.signature, for: certificate),
            let record = try await store.certificate(serial: certificate.serialNumber.hex),
            let deviceID = record.deviceID
        else {
            throw KeygateError(
                .clientCertificateInvalid, "the client certificate is not a device certificate of this CA")
        }
        let admitted = try await admit(deviceID, client: client, now: now)
        guard record.status == .active else {
            throw KeygateError(.clientCertificateInvalid, "the client certificate \(record.serial) is revoked")
        }
        guard record.notAfter >= now else {
            throw KeygateError(
                .clientCertificateInvalid,
                "the client certificate expired; re-attest with POST /device/v1/enroll within the group's grace")
        }
        guard admitted.device.state == .enrolled else {
            throw KeygateError(
                .notEnrolled, "\(admitted.device.id) is \(admitted.device.state.rawValue), not enrolled")
        }
        // Only the newest certificate speaks for the device: an older one (still valid as the Azure
        // enrollment's secondary) must not renew, or a copy of an old key would outlive every renewal.
        guard try await store.latestCertificate(deviceID: deviceID)?.serial == record.serial else {
            throw KeygateError(
                .clientCertificateInvalid,
                "certificate \(record.serial) was superseded by a renewal; present the device's newest certificate")
        }
        return CertificateSession(
            device: admitted.device, group: admitted.group, record: record, certificate: certificate)
    }

    // MARK: Refusals

    /// An ID that is not on the allowlist: anyone can send one, so nothing is written; it is counted
    /// (`keygate_device_refusals_total{reason="deviceNotAllowlisted"}`) and logged at most every 10 s.
    private func notAllowlisted(_ deviceID: String, client: String) -> KeygateError {
        metrics.deviceRefused(reason: "deviceNotAllowlisted")
        refusalLog.notice { count in
            "refused \(count) request(s) for IDs not on the allowlist; the latest: \(deviceID) from \(client)"
        }
        return KeygateError(.deviceNotAllowlisted, "\(deviceID) is not on the allowlist")
    }

    private func refusal(for device: Device) -> KeygateError {
        device.state == .retired
            ? KeygateError(.deviceRetired, "\(device.id) is retired")
            : KeygateError(
                .deviceQuarantined, "\(device.id) is quarantined (\(device.stateReason ?? "no reason given"))")
    }

    /// Counts a failed attestation for the device (audited, never a lock of the device) and for the
    /// caller's address (which is refused for a while after too many), then returns the error to throw.
    func fail(_ device: Device, _ code: KeygateError.Code, _ reason: String, client: String, now: Date) async throws
        -> KeygateError
    {
        _ = try await store.recordAttestationFailure(
            deviceID: device.id, lockAfter: Int.max, lockFor: 0, now: now,
            audit: .init(
                actor: "device:\(device.id)", action: "device.attestationFailed", subject: device.id,
                details: ["code": code.rawValue, "reason": reason, "client": client]))
        if let until = guardian.recordFailure(from: client, device: device.id, now: now) {
            return KeygateError(
                .deviceLocked, "\(reason); \(client) is refused for \(device.id) for a while",
                retryAfter: Int(until.timeIntervalSince(now).rounded(.up)))
        }
        return KeygateError(code, reason)
    }

    private func clearFailures(_ device: Device) async throws -> Device {
        guard device.failedAttempts > 0 else { return device }
        return try await store.clearAttestationFailures(deviceID: device.id)
    }
}
