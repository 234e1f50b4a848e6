public import Foundation
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateStore
import SwiftASN1
import X509

/// How an EST client authenticated (RFC 7030 §3.2.3, §3.3.2).
public enum ESTCredential: Sendable {
    /// The TLS client certificate (DER): a bootstrap certificate from the group's CAs, or the
    /// device's newest Keygate certificate.
    case certificate([UInt8])
    /// HTTP Basic: the device ID and its one-time enrollment token.
    case password(deviceID: String, token: String)
}

/// What an EST enrollment ended with.
public enum ESTOutcome: Sendable {
    /// The new certificate (DER).
    case issued([UInt8])
    /// The group wants an operator's approval: ask again after this many seconds (RFC 7030 §4.2.3).
    case pending(retryAfter: Int)
}

extension EnrollmentService {
    /// The attestation method name a group lists to accept HTTP Basic with the one-time enrollment token.
    public static let estTokenMethod = "token"

    /// EST `simpleenroll` / `simplereenroll` (RFC 7030 §4.2): the CSR (DER) of a device that
    /// authenticated with `credential`, through the same allowlist, policy, state machine, audit log
    /// and outbox as the device API. `label` is the group the URL names, if any.
    ///
    /// - A Keygate certificate renews, like `/device/v1/renew` (newest certificate, a new key unless
    ///   the group allows reuse).
    /// - A bootstrap certificate attests like X.509 bootstrap attestation (assurance 3); an enrolled
    ///   device re-attesting renews, within its group's grace after expiry.
    /// - A password is the device's one-time enrollment token (assurance 1), for groups that list
    ///   `token`; it serves the first enrollment only.
    public func estEnroll(
        csr der: [UInt8], credential: ESTCredential?, label: String?, reenroll: Bool, client: String = "local",
        now: Date = Date()
    ) async throws -> ESTOutcome {
        guard let credential else {
            throw KeygateError(
                .estAuthenticationRequired,
                "authenticate with a TLS client certificate (bootstrap or Keygate) or HTTP Basic (device ID and enrollment token)"
            )
        }
        let csrPEM = PEM.encode(label: "CERTIFICATE REQUEST", der: der)
        switch credential {
        case .certificate(let certificateDER):
            guard let certificate = try? Certificate(derEncoded: certificateDER) else {
                throw KeygateError(.clientCertificateInvalid, "the TLS client certificate cannot be read")
            }
            if certificate.issuer == certificates.authority.certificate.subject {
                return try await estRenew(csrPEM: csrPEM, certificateDER: certificateDER, label: label, client: client, now: now)
            }
            guard !reenroll else {
                throw KeygateError(
                    .estReenrollNeedsKeygateCertificate,
                    "simplereenroll authenticates with the device's current Keygate certificate; use simpleenroll to enroll"
                )
            }
            return try await estBootstrap(csr: Array(csrPEM.utf8), certificate: certificate, label: label, client: client, now: now)
        case .password(let deviceID, let token):
            guard !reenroll else {
                throw KeygateError(
                    .estReenrollNeedsKeygateCertificate,
                    "simplereenroll authenticates with the device's current Keygate certificate, not a password")
            }
            return try await estToken(csr: Array(csrPEM.utf8), deviceID: deviceID, token: token, label: label, client: client, now: now)
        }
    }

    private func estRenew(csrPEM: String, certificateDER: [UInt8], label: String?, client: String, now: Date)
        async throws -> ESTOutcome
    {
        if let label {
            let session = try await sessions.certificateSession(clientCertificate: certificateDER, client: client, now: now)
            try Self.checkLabel(label, group: session.group.name, device: session.device.id)
        }
        let response = try await renew(
            DeviceAPI.RenewRequest(csr: csrPEM), clientCertificate: certificateDER, client: client, now: now)
        return .issued(try Self.leafDER(response))
    }

    private func estBootstrap(csr: [UInt8], certificate: Certificate, label: String?, client: String, now: Date)
        async throws -> ESTOutcome
    {
        guard let deviceID = BootstrapAttestation.deviceID(named: certificate) else {
            throw KeygateError(.clientCertificateInvalid, "the client certificate names no device (no CN or serialNumber)")
        }
        let admitted = try await sessions.admit(deviceID, client: client, now: now)
        let (device, group) = (admitted.device, admitted.group)
        if let label { try Self.checkLabel(label, group: group.name, device: device.id) }
        try Self.checkMethod(.x509, group: group, device: device)
        let profile = try group.policy.certificateProfile()
        let checked = try certificates.check(csr, profile: profile)
        let current = try await currentCertificateWithinGrace(device, policy: group.policy, now: now)
        let trusted = group.policy.bootstrapCAs.compactMap { try? Certificate(pemEncoded: $0) }
        do {
            _ = try await BootstrapAttestation.verifyClientCertificate(certificate, trustedCAs: trusted, now: now)
        } catch let error as BootstrapRejected {
            throw try await sessions.fail(device, .attestationFailed, error.reason, client: client, now: now)
        }
        let consumeToken = try await sessions.checkEnrollmentToken(nil, for: device, client: client, now: now)
        sessions.guardian.recordSuccess(from: client, device: device.id)
        let response = try await completeEnrollment(
            checked, profile: profile, device: device, group: group,
            attestation: (method: "est-x509", level: AttestationMethod.x509.assuranceLevel), current: current,
            consumeToken: consumeToken, now: now)
        return try Self.outcome(response)
    }

    private func estToken(csr: [UInt8], deviceID: String, token: String, label: String?, client: String, now: Date)
        async throws -> ESTOutcome
    {
        let admitted = try await sessions.admit(deviceID, client: client, now: now)
        let (device, group) = (admitted.device, admitted.group)
        if let label { try Self.checkLabel(label, group: group.name, device: device.id) }
        guard group.policy.attestationMethods.contains(Self.estTokenMethod) else {
            throw KeygateError(
                .attestationMethodNotAllowed,
                "group \(group.name) does not accept enrollment tokens over EST (attestation method 'token')")
        }
        guard group.policy.minimumAssurance <= 1 else {
            throw KeygateError(
                .assuranceTooLow, "an enrollment token gives assurance 1; group \(group.name) needs \(group.policy.minimumAssurance)")
        }
        guard device.ddkEpoch == 0 else {
            throw KeygateError(
                .attestationMethodNotAllowed, "\(device.id) has DDK keys; it must attest with DDK or a stronger method")
        }
        guard device.state != .enrolled else {
            throw KeygateError(
                .enrollmentTokenInvalid,
                "\(device.id) is enrolled and its token used; renew with simplereenroll and its current certificate")
        }
        let entry = try await store.allowlistEntry(deviceID: device.id)
        guard let tokenHash = entry?.tokenHash, entry?.tokenUsed == false, AdminTokenSecret.hash(token) == tokenHash
        else {
            throw try await sessions.fail(
                device, .enrollmentTokenInvalid, "the device ID and one-time enrollment token do not match",
                client: client, now: now)
        }
        let profile = try group.policy.certificateProfile()
        let checked = try certificates.check(csr, profile: profile)
        sessions.guardian.recordSuccess(from: client, device: device.id)
        let response = try await completeEnrollment(
            checked, profile: profile, device: device, group: group, attestation: (method: "est-token", level: 1),
            current: nil, consumeToken: true, now: now)
        return try Self.outcome(response)
    }

    private static func checkLabel(_ label: String, group: String, device: String) throws {
        guard label == group else {
            throw KeygateError(.estLabelMismatch, "\(device) belongs to group \(group), not \(label)")
        }
    }

    private static func checkMethod(_ method: AttestationMethod, group: Group, device: Device) throws {
        guard group.policy.attestationMethods.contains(method.rawValue) else {
            throw KeygateError(.attestationMethodNotAllowed, "group \(group.name) does not accept \(method.rawValue)")
        }
        guard method.assuranceLevel >= group.policy.minimumAssurance else {
            throw KeygateError(
                .assuranceTooLow,
                "\(method.rawValue) gives assurance \(method.assuranceLevel); group \(group.name) needs \(group.policy.minimumAssurance)")
        }
    }

    private static func outcome(_ response: DeviceAPI.EnrollResponse) throws -> ESTOutcome {
        if response.status == Device.State.pendingApproval.rawValue { return .pending(retryAfter: 60) }
        return .issued(try leafDER(response))
    }

    private static func leafDER(_ response: DeviceAPI.EnrollResponse) throws -> [UInt8] {
        guard let chain = response.certificateChain, let leaf = PEM.blocks(in: chain).first else {
            throw KeygateError(.internalError, "the enrollment answered no certificate")
        }
        return leaf
    }

    /// What `csrattrs` answers for a group: the key algorithms its policy allows.
    public func estCSRAttributes(label: String?) async throws -> [UInt8]? {
        guard let label else { return nil }
        guard let group = try await store.group(named: label) else {
            throw KeygateError(.groupNotFound, "no group named '\(label)'")
        }
        let algorithms = group.policy.keyAlgorithms.compactMap(KeyAlgorithm.init(rawValue:))
        return try ESTMessages.csrAttributes(ESTMessages.csrAttributes(for: algorithms))
    }

    /// `cacerts` (RFC 7030 §4.1): the issuing CA and the root, certs-only.
    public func estCACertificates() throws -> [UInt8] {
        try ESTMessages.certsOnly(PEM.blocks(in: certificates.authority.chainPEM))
    }
}
