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
    let store: any ServerStore
    /// The issuing CA that signs certificates.
    public let authority: CertificateAuthority
    /// The CRL and OCSP URLs written into certificates.
    public let revocation: RevocationPointers
    let csrPolicy: CSRPolicy
    /// The server's metrics, updated on issuance, revocation, CRL and OCSP work.
    public let metrics: KeygateMetrics
    /// Signs and caches the current CRL.
    public let crl: CRLPublisher
    /// Signs OCSP answers for the issuing CA.
    public let ocsp: OCSPResponder
    let ocspCache: OCSPCache
    /// How many OCSP answers may be signed on the spot (nonces), per client and overall.
    let ocspBudget: OCSPBudget

    /// Creates the service with its CRL publisher and OCSP responder; throws when the OCSP responder cannot be set up.
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
        self.ocspCache = OCSPCache(freshFor: ocspValidity / 2)
        self.ocspBudget = OCSPBudget()
    }

    /// The issuer name under which records and CRLs are kept.
    public var issuerName: String { authority.certificate.subject.description }

    /// A certificate as issued: the record and the chain to hand out.
    public struct Issued: Sendable {
        /// The stored record.
        public var record: CertificateRecord
        /// The signed certificate.
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
        let issued = try await sign(
            try check(csr, profile: profile), profile: profile, identity: identity, validity: validity,
            deviceID: deviceID)
        do {
            try await store.insertCertificate(issued.record, audit: issuanceAudit(issued.record, actor: actor))
        } catch let error as KeygateError {
            metrics.issuanceFailed(code: error.code.rawValue)
            throw error
        }
        return issued
    }

    /// Checks a CSR (PEM or DER) against the CSR policy and the key algorithms `profile` allows.
    /// A refusal is counted in `keygate_issuance_failures_total`.
    public func check(_ csr: [UInt8], profile: CertificateProfile) throws -> CSRPolicy.Checked {
        do {
            return try csrPolicy.check(csr, allowed: profile.allowedKeyAlgorithms)
        } catch let error as KeygateError {
            metrics.issuanceFailed(code: error.code.rawValue)
            throw error
        }
    }

    /// Signs a checked CSR, but does not record it: the caller records the certificate in the same
    /// transaction as whatever else it changes (a device's state), before handing it out. Counts the
    /// certificate and its signing time, or the failure.
    public func sign(
        _ checked: CSRPolicy.Checked,
        profile: CertificateProfile,
        identity: CertificateIdentity,
        validity: TimeInterval? = nil,
        deviceID: String? = nil
    ) async throws -> Issued {
        let started = ContinuousClock.now
        do {
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
            metrics.certificateIssued(profile: profile.name, duration: ContinuousClock.now - started)
            return Issued(record: record, certificate: certificate, chainPEM: pem + authority.chainPEM)
        } catch let error as KeygateError {
            metrics.issuanceFailed(code: error.code.rawValue)
            throw error
        }
    }

    /// The audit event of an issuance.
    func issuanceAudit(_ record: CertificateRecord, actor: String) -> AuditEvent.Draft {
        var details = ["profile": record.profile, "subject": record.subject, "notAfter": "\(record.notAfter)"]
        if let deviceID = record.deviceID { details["deviceId"] = deviceID }
        return .init(actor: actor, action: "certificate.issued", subject: record.serial, details: details)
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
        await statusChanged([normalized])
        return record
    }

    /// The record with `serial` (hex, any case, colons allowed); throws `certificateNotFound` when there is none.
    public func certificate(serial: String) async throws -> CertificateRecord {
        guard let normalized = Certificate.SerialNumber(hex: serial)?.hex,
            let record = try await store.certificate(serial: normalized)
        else {
            throw KeygateError(.certificateNotFound, "no certificate with serial \(serial)")
        }
        return record
    }

    /// Certificate records matching `query`, in issue order.
    public func certificates(matching query: CertificateQuery) async throws -> [CertificateRecord] {
        try await store.certificates(matching: query)
    }

    /// How many certificates are in each status.
    public func certificateCounts() async throws -> [CertificateRecord.Status: Int] {
        try await store.certificateCounts()
    }

    /// Answers an OCSP request (DER) from `client` (its address). A request without a nonce for one
    /// certificate is served from answers signed ahead of time; a nonce (or several certificates) gets an
    /// answer signed now, within a budget per client and overall (an HSM or Key Vault has a limited
    /// capacity). Over the budget, a nonce request for one certificate gets the kept answer (without
    /// the nonce) and anything else `tryLater`.
    public func answerOCSP(_ requestDER: [UInt8], client: String = "local", now: Date = Date()) async -> [UInt8] {
        let parsed = try? OCSPRequest(derBytes: requestDER)
        guard let request = parsed, request.certIDs.count == 1, request.nonceExtensionValue == nil,
            ocsp.isIssuedByThisCA(request.certIDs[0])
        else {
            if parsed != nil, !ocspBudget.allows(client: client, now: now) {
                metrics.ocspOverBudget()
                guard let request = parsed, request.certIDs.count == 1, ocsp.isIssuedByThisCA(request.certIDs[0])
                else { return OCSPResponder.unsignedResponse(.tryLater) }
                return await keptAnswer(request.certIDs[0], now: now)
            }
            let answer = await ocsp.respond(to: requestDER, now: now) { try await self.ocspStatus($0.hex) }
            metrics.ocspAnswered(cached: false, successful: answer.count > 5)
            return answer
        }
        return await keptAnswer(request.certIDs[0], now: now)
    }

    /// The answer signed ahead for one certificate (signed now and kept when there is none yet).
    private func keptAnswer(_ id: OCSPRequest.CertID, now: Date) async -> [UInt8] {
        let serial = id.serialNumber.hex
        if let bytes = ocspCache.answer(serial: serial, id: id, now: now) {
            metrics.ocspAnswered(cached: true, successful: true)
            return bytes
        }
        let answer =
            await presign(serial: serial, ids: [id], now: now).first ?? OCSPResponder.unsignedResponse(.tryLater)
        metrics.ocspAnswered(cached: false, successful: answer.count > 5)
        return answer
    }

    private func ocspStatus(_ serial: String) async throws -> OCSPCertificateStatus {
        guard let record = try await store.certificate(serial: serial), record.issuer == issuerName else {
            return .unknown
        }
        return record.ocspStatus
    }

    /// Signs the answers for `serial` and keeps them; returns them in the order of `ids`.
    @discardableResult
    func presign(serial: String, ids: [OCSPRequest.CertID], now: Date = Date()) async -> [[UInt8]] {
        let version = ocspCache.version(serial: serial)
        do {
            let status = try await ocspStatus(serial)
            var answers: [[UInt8]] = []
            for id in ids {
                let bytes = try await ocsp.signedResponse([(id, status)], nonce: nil, now: now)
                // "unknown" is not kept: the serial may be recorded a moment later.
                if status != .unknown {
                    ocspCache.put(serial: serial, id: id, entry: .init(bytes: bytes, producedAt: now), version: version)
                }
                answers.append(bytes)
            }
            return answers
        } catch {
            return ids.map { _ in OCSPResponder.unsignedResponse(.tryLater) }
        }
    }

    /// After certificates changed status (revoked, held, released): drops their kept OCSP answers
    /// and signs new ones, for the CertIDs clients asked with and the common SHA-1 form.
    func statusChanged(_ serials: [String], now: Date = Date()) async {
        for serial in serials {
            var ids = ocspCache.invalidate(serial: serial)
            if let parsed = Certificate.SerialNumber(hex: serial), let common = try? ocsp.certID(serial: parsed),
                !ids.contains(common)
            {
                ids.append(common)
            }
            await presign(serial: serial, ids: ids, now: now)
        }
    }

    /// Another node changed these certificates' status: the answers kept for them are dropped (an
    /// answer signed from a status read before the change is never kept) and signed again.
    func statusChangedElsewhere(_ serials: [String], now: Date = Date()) async {
        for serial in serials {
            let ids = ocspCache.invalidate(serial: serial)
            if !ids.isEmpty { await presign(serial: serial, ids: ids, now: now) }
        }
    }

    /// Signs again the kept answers that passed a third of their validity, before they go stale.
    /// Returns how many were refreshed.
    @discardableResult
    func refreshOCSPAnswers(now: Date = Date(), limit: Int = 50_000) async -> Int {
        let aging = ocspCache.aging(olderThan: ocsp.validity / 3, now: now, limit: limit)
        for (serial, id) in aging { await presign(serial: serial, ids: [id], now: now) }
        return aging.count
    }

    /// How many OCSP answers are kept signed.
    public var keptOCSPAnswers: Int { ocspCache.count }
}

/// The budget of OCSP answers signed on the spot: per client address and for the whole node.
struct OCSPBudget: Sendable {
    let perClient: TokenBuckets
    let overall: TokenBuckets

    init(perClientPerSecond: Double = 5, perClientBurst: Double = 20, overallPerSecond: Double = 200) {
        perClient = TokenBuckets(rate: perClientPerSecond, burst: perClientBurst)
        overall = TokenBuckets(rate: overallPerSecond, burst: overallPerSecond * 2, maximumEntries: 1)
    }

    /// Whether one more answer may be signed now for `client`.
    func allows(client: String, now: Date) -> Bool {
        perClient.take(client, now: now) == nil && overall.take("*", now: now) == nil
    }
}
