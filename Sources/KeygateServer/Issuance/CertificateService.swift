public import Foundation
public import KeygateDomain
public import KeygatePKI
public import KeygateStore
public import X509

/// Issuing, revoking and looking up certificates: the PKI core every API calls.
///
/// A certificate is recorded in the store, with its audit event, before it is returned; if the
/// store refuses, the certificate is dropped and never leaves the process.
public final class CertificateService: Sendable {
    public let store: any ServerStore
    public let authority: CertificateAuthority
    public let revocation: RevocationPointers
    public let csrPolicy: CSRPolicy
    public let metrics: KeygateMetrics
    public let crl: CRLPublisher
    public let ocsp: OCSPResponder

    public init(
        store: any ServerStore, authority: CertificateAuthority, revocation: RevocationPointers,
        crlValidity: TimeInterval = 86_400, ocspValidity: TimeInterval = 3_600, csrPolicy: CSRPolicy = CSRPolicy(),
        metrics: KeygateMetrics = KeygateMetrics()
    ) throws {
        self.store = store
        self.authority = authority
        self.revocation = revocation
        self.csrPolicy = csrPolicy
        self.metrics = metrics
        self.crl = CRLPublisher(store: store, authority: authority, validity: crlValidity, metrics: metrics)
        self.ocsp = try OCSPResponder(authority: authority, validity: ocspValidity)
    }

    /// The issuer name under which records and CRLs are kept.
    public var issuerName: String { authority.certificate.subject.description }

    /// A certificate as issued: the record and the chain to hand out.
    public struct Issued: Sendable {
        public var record: CertificateRecord
        public var certificate: Certificate
        /// Leaf, issuing CA, root; PEM.
        public var chainPEM: String
    }

    /// Checks `csr` (PEM or DER), signs it under `profile` for `identity`, records it and returns it.
    public func issue(
        csr: [UInt8],
        profile: CertificateProfile,
        identity: CertificateIdentity,
        validity: TimeInterval? = nil,
        deviceID: String? = nil,
        actor: String
    ) async throws -> Issued {
        let started = ContinuousClock.now
        let issued = try await sign(
            csr: csr, profile: profile, identity: identity, validity: validity, deviceID: deviceID)
        do {
            try await store.insertCertificate(issued.record, audit: issuanceAudit(issued.record, actor: actor))
        } catch let error as KeygateError {
            metrics.issuanceFailed(code: error.code.rawValue)
            throw error
        }
        metrics.certificateIssued(profile: profile.name, duration: ContinuousClock.now - started)
        return issued
    }

    /// Checks and signs, but does not record: the caller records the certificate in the same
    /// transaction as whatever else it changes (a device's state), before handing it out.
    public func sign(
        csr: [UInt8],
        profile: CertificateProfile,
        identity: CertificateIdentity,
        validity: TimeInterval? = nil,
        deviceID: String? = nil
    ) async throws -> Issued {
        do {
            let checked = try csrPolicy.check(csr, allowed: profile.allowedKeyAlgorithms)
            let certificate: Certificate
            do {
                certificate = try await authority.issue(
                    csr: checked, profile: profile, identity: identity, revocation: revocation, validity: validity)
            } catch let error as KeygateError {
                throw error
            } catch {
                throw KeygateError(.signerUnavailable, "the issuing CA could not sign: \(error)", retryAfter: 5)
            }
            let pem = try certificate.pemString
            let record = CertificateRecord(
                serial: certificate.serialNumber.hex, subject: certificate.subject.description, issuer: issuerName,
                notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter, profile: profile.name,
                pem: pem, deviceID: deviceID)
            return Issued(record: record, certificate: certificate, chainPEM: pem + authority.chainPEM)
        } catch let error as KeygateError {
            metrics.issuanceFailed(code: error.code.rawValue)
            throw error
        }
    }

    /// The audit event of an issuance.
    public func issuanceAudit(_ record: CertificateRecord, actor: String) -> AuditEvent.Draft {
        var details = ["profile": record.profile, "subject": record.subject, "notAfter": "\(record.notAfter)"]
        if let deviceID = record.deviceID { details["deviceId"] = deviceID }
        return .init(actor: actor, action: "certificate.issued", subject: record.serial, details: details)
    }

    /// Counts an issuance recorded elsewhere (by the onboarding service).
    func recordIssuanceMetrics(profile: String, since started: ContinuousClock.Instant) {
        metrics.certificateIssued(profile: profile, duration: ContinuousClock.now - started)
    }

    /// Revokes a certificate. The CRL is rebuilt lazily: the next fetch (or the publisher's
    /// next tick) sees the new revision, so a burst of revocations costs one rebuild.
    public func revoke(serial: String, reason: RevocationReason, actor: String, at date: Date = Date()) async throws
        -> CertificateRecord
    {
        guard let normalized = Certificate.SerialNumber(hex: serial)?.hex else {
            throw KeygateError(.malformedInput, "'\(serial)' is not a hexadecimal serial number")
        }
        guard reason.isAllowedForEndEntity else {
            throw KeygateError(.unknownRevocationReason, "\(reason.name) cannot be used to revoke a single certificate")
        }
        let record = try await store.revokeCertificate(
            serial: normalized, reason: reason, at: date,
            audit: .init(
                actor: actor, action: "certificate.revoked", subject: normalized, details: ["reason": reason.name]))
        metrics.certificateRevoked(reason: reason.name)
        return record
    }

    public func certificate(serial: String) async throws -> CertificateRecord {
        guard let normalized = Certificate.SerialNumber(hex: serial)?.hex,
            let record = try await store.certificate(serial: normalized)
        else {
            throw KeygateError(.certificateNotFound, "no certificate with serial \(serial)")
        }
        return record
    }

    /// Answers an OCSP request (DER) from the store.
    public func answerOCSP(_ request: [UInt8]) async -> [UInt8] {
        let store = self.store
        let issuer = issuerName
        let answer = await ocsp.respond(to: request) { serial in
            guard let record = try await store.certificate(serial: serial.hex), record.issuer == issuer else {
                return .unknown
            }
            return record.ocspStatus
        }
        metrics.ocspAnswered(status: answer.count > 5 ? "successful" : "error")
        return answer
    }
}
