import AsyncHTTPClient
import Crypto
import Foundation
import KeygateAgent
import KeygateAttestation
import KeygateAzure
import KeygateDomain
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftASN1
import Testing
import X509

/// Quarantine, re-authorization, retirement, renewal over mTLS and after expiry, rotations, the
/// expiry scanner and the CRL dropping expired entries; checked with openssl and pkilint.
@Suite(.tags(.slow), .fullRunOnly) struct LifecycleTests {
    typealias Harness = AgentEnrollmentTests.Harness

    static func ddk(_ device: String) -> Enrollment.Credential {
        .ddk(attributes: DDKAttributes(strings: ["machine-id": device]), seed: [])
    }

    static func apiCode(_ body: () async throws -> Void) async -> String {
        do {
            try await body()
            return "none"
        } catch let error as DeviceClient.APIError {
            return error.code
        } catch {
            return "other: \(error)"
        }
    }

    /// Asks the running server over HTTP with openssl (a nonce: signed now) or without (`-no_nonce`:
    /// served from the answers signed ahead); returns openssl's text and lints the answer.
    static func ocsp(
        _ h: Harness, certificate: String, nonce: Bool, label: String,
        answeredAt: ((ContinuousClock.Instant) -> Void)? = nil
    ) async throws -> String {
        let leaf = try h.folder.write("\(label).pem", certificate)
        let response = h.folder.file("\(label).ocsp.der")
        var arguments = [
            "ocsp", "-issuer", h.kg.issuingPath, "-cert", leaf, "-url", h.server.httpURL + "/pki/ocsp", "-CAfile",
            h.kg.chainPath, "-resp_text", "-respout", response,
        ]
        if !nonce { arguments.append("-no_nonce") }
        let result = try await ExternalTool.openssl.run(arguments)
        answeredAt?(ContinuousClock.now)
        #expect(result.combined.contains("Response verify OK"), "\(result.combined)")
        try await lint(ocsp: response)
        return result.stdout
    }

    static func lint(ocsp path: String) async throws {
        guard ExternalTool.available("lint_ocsp_response") else { return }
        let lint = try await ExternalTool.require("lint_ocsp_response").run(["lint", "-s", "WARNING", path])
        #expect(
            lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
            "pkilint on \(path): \(lint.combined)")
    }

    /// The CRL the server publishes, once it reflects `predicate` (bounded wait): its text, linted.
    static func crl(
        _ h: Harness, label: String, reflectedAt: ((ContinuousClock.Instant) -> Void)? = nil,
        until predicate: (String) -> Bool
    ) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(15)
        var text = ""
        repeat {
            let response = try await h.http.execute(
                HTTPClientRequest(url: h.server.httpURL + "/pki/crl"), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 16 << 20)
            let der = try h.folder.write("\(label).crl.der", Data(body.readableBytesView))
            let pem = h.folder.file("\(label).crl.pem")
            try await ExternalTool.openssl.run(["crl", "-inform", "DER", "-in", der, "-out", pem])
            text = try await ExternalTool.openssl.run([
                "crl", "-in", pem, "-noout", "-text", "-CAfile", h.kg.chainPath,
            ]).combined
            if predicate(text) {
                reflectedAt?(ContinuousClock.now)
                if ExternalTool.available("lint_crl") {
                    let lint = try await ExternalTool.require("lint_crl").run([
                        "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", pem,
                    ])
                    #expect(
                        lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                        "pkilint on the \(label) CRL: \(lint.combined)")
                }
                return text
            }
            try await Task.sleep(for: .milliseconds(500))
        } while ContinuousClock.now < deadline
        Issue.record("the CRL never reflected \(label): \(text)")
        return text
    }

    static func hexUpper(_ serial: String) -> String { serial.uppercased() }

    @Test func quarantineHoldsTheCertificateAndReauthorizationReleasesItAndIssuesANewOne() async throws {
        guard ExternalTool.available("openssl") else { return }
        let h = try await Harness.make(.init(), devices: ["valve-1"])
        defer { Task { await h.stop() } }
        let enrollment = try h.enrollment("valve-1", Self.ddk("valve-1"))
        guard case .enrolled(let serial, _) = try await enrollment.run() else {
            Issue.record("not enrolled")
            return
        }
        let store = h.kg.server.store
        let pem = try #require(try await store.certificate(serial: serial)).pem
        #expect(try await Self.ocsp(h, certificate: pem, nonce: false, label: "good").contains("Cert Status: good"))

        // Within seconds of the quarantine, OCSP (the answer signed at the quarantine, served as
        // signed ahead) and the CRL (the next 5-second tick) show the hold; linting comes after.
        let started = ContinuousClock.now
        _ = try await h.kg.server.services.lifecycle.quarantine(
            deviceID: "valve-1", reason: "tamper alarm", actor: "admin:test")
        var answered = ContinuousClock.now
        let held = try await Self.ocsp(h, certificate: pem, nonce: false, label: "held", answeredAt: { answered = $0 })
        #expect(held.contains("Cert Status: revoked") && held.contains("certificateHold"), "\(held)")
        #expect(answered - started < .seconds(5), "OCSP shows the hold at once: \(answered - started)")
        var reflected = ContinuousClock.now
        let heldCRL = try await Self.crl(h, label: "held", reflectedAt: { reflected = $0 }) {
            $0.contains(Self.hexUpper(serial))
        }
        #expect(heldCRL.contains("Certificate Hold"), "\(heldCRL)")
        #expect(reflected - started < .seconds(10), "the CRL shows the hold within seconds: \(reflected - started)")
        let signedNow = try await Self.ocsp(h, certificate: pem, nonce: true, label: "held-nonce")
        #expect(signedNow.contains("Cert Status: revoked") && signedNow.contains("certificateHold"))

        // The device's calls are refused with deviceQuarantined, attested or over mTLS.
        #expect(await Self.apiCode { _ = try await enrollment.status() } == "deviceQuarantined")
        #expect(await Self.apiCode { _ = try await enrollment.renewalInfo() } == "deviceQuarantined")
        #expect(await Self.apiCode { _ = try await enrollment.renew() } == "deviceQuarantined")

        // Re-authorization: the hold is released (removal from hold), the device enrolls again.
        _ = try await h.kg.server.services.lifecycle.reauthorize(deviceID: "valve-1", actor: "admin:test")
        #expect(try await Self.ocsp(h, certificate: pem, nonce: false, label: "released").contains("Cert Status: good"))
        let releasedCRL = try await Self.crl(h, label: "released") { !$0.contains(Self.hexUpper(serial)) }
        #expect(!releasedCRL.contains(Self.hexUpper(serial)))
        guard case .enrolled(let renewed, _) = try await enrollment.run() else {
            Issue.record("not enrolled again")
            return
        }
        #expect(renewed != serial)
        let newPEM = try #require(try await store.certificate(serial: renewed)).pem
        #expect(try Certificate(pemEncoded: newPEM).publicKey != Certificate(pemEncoded: pem).publicKey)

        let actions = try await store.auditEvents(subject: "valve-1", since: nil, limit: 50).map(\.action)
        #expect(actions.contains("device.quarantined") && actions.contains("device.reauthorized"), "\(actions)")
        let quarantined = try await store.auditEvents(subject: "valve-1", since: nil, limit: 50).first {
            $0.action == "device.quarantined"
        }
        #expect(quarantined?.details["certificates"] == serial && quarantined?.details["certificateChange"] == "hold")
        #expect(try await store.verifyAuditChain() == nil)
    }

    @Test func aRevokingPolicyRevokesForGoodAndRetirementDeletesTheAzureIdentity() async throws {
        guard ExternalTool.available("openssl") else { return }
        let folder = try TemporaryDirectory("retire")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let h = try await Harness.make(
            .init(quarantineAction: "revoke", releaseHeldOnReauthorize: false), devices: ["meter-1"])
        defer { Task { await h.stop() } }
        try await ConnectorFlowTests.connect(h, sandbox: sandbox.connection)
        let store = h.kg.server.store
        let enrollment = try h.enrollment("meter-1", Self.ddk("meter-1"))
        guard case .enrolled(let first, _) = try await enrollment.run() else { return }
        _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: "meter-1", reason: "manual", actor: "admin:test")
        #expect(try await store.certificate(serial: first)?.status == .revoked)
        #expect(try await store.certificate(serial: first)?.revocationReason == .privilegeWithdrawn)
        _ = try await h.kg.server.services.lifecycle.reauthorize(deviceID: "meter-1", actor: "admin:test")
        #expect(try await store.certificate(serial: first)?.status == .revoked, "a revocation is for good")
        guard case .enrolled(let second, _) = try await enrollment.run() else { return }
        #expect(try await ConnectorFlowTests.waitConfirmed(store, ["meter-1"]))

        let control = SandboxControlClient(connection: sandbox.connection)
        #expect(try await control.inventory().enrollments.contains { $0.id == "meter-1" })
        _ = try await h.kg.server.services.lifecycle.retire(deviceID: "meter-1", reason: "decommissioned", actor: "admin:test")
        let record = try #require(try await store.certificate(serial: second))
        #expect(record.status == .revoked && record.revocationReason == .cessationOfOperation)
        let text = try await Self.ocsp(h, certificate: record.pem, nonce: false, label: "retired")
        #expect(text.contains("Cert Status: revoked") && text.contains("cessationOfOperation"), "\(text)")
        // The outbox deletes the DPS enrollment and the hub identity.
        let deadline = ContinuousClock.now + .seconds(30)
        var inventory = try await control.inventory()
        while ContinuousClock.now < deadline, inventory.enrollments.contains(where: { $0.id == "meter-1" }) {
            try await Task.sleep(for: .milliseconds(250))
            inventory = try await control.inventory()
        }
        #expect(!inventory.enrollments.contains { $0.id == "meter-1" })
        #expect(!inventory.devices.contains { $0.deviceId == "meter-1" })
        #expect(await Self.apiCode { _ = try await enrollment.status() } == "deviceRetired")
        let retired = try await store.auditEvents(subject: "meter-1", since: nil, limit: 50).first {
            $0.action == "device.retired"
        }
        #expect(retired?.details["reason"] == "decommissioned" && retired?.details["certificates"] == second)
    }

    @Test func renewalOverMTLSNeedsTheCurrentCertificateAndANewKey() async throws {
        let h = try await Harness.make(.init(), devices: ["gate-1", "gate-2", "gate-3"])
        defer { Task { await h.stop() } }
        var enrollments: [String: Enrollment] = [:]
        for device in ["gate-1", "gate-2", "gate-3"] {
            let enrollment = try h.enrollment(device, Self.ddk(device))
            _ = try await enrollment.run()
            enrollments[device] = enrollment
        }
        let gate = enrollments["gate-1"]!
        let before = try #require(gate.folder.load())
        let oldIdentity = try gate.currentIdentity(before)

        // Without a client certificate: 401 clientCertificateRequired.
        var request = HTTPClientRequest(url: h.server.httpsURL + "/device/v1/renewal")
        request.method = .GET
        let anonymous = try await h.http.execute(request, timeout: .seconds(10))
        let anonymousBody = String(buffer: try await anonymous.body.collect(upTo: 1 << 16))
        #expect(anonymous.status == .unauthorized && anonymousBody.contains("clientCertificateRequired"))

        // The window: two thirds of a year plus jitter, not yet open.
        let info = try await gate.renewalInfo()
        #expect(info.serial == before.certificateSerial && info.reason == "window")
        let lifetime = info.notAfter.timeIntervalSince(Date())
        #expect(info.renewAfter > Date() + lifetime * 0.6 && info.renewAfter < Date() + lifetime * 0.8)

        // The same key again: keyReuse.
        let sameKey = DDKIdentity(deviceID: "gate-1", attributes: DDKAttributes(strings: ["machine-id": "gate-1"]))
            .tlsKey(generation: UInt64(before.tlsGeneration))
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("gate-1") },
            privateKey: Certificate.PrivateKey(sameKey), attributes: .init()
        ).serializeAsPEM().pemString
        #expect(
            await Self.apiCode {
                _ = try await gate.client.renew(.init(csr: csr), identity: oldIdentity)
            } == "keyReuse")

        // A renewal: a new certificate, the device's TLS generation moves on.
        guard case .enrolled(let serial, _) = try await gate.renew() else { return }
        let after = try #require(gate.folder.load())
        #expect(serial != before.certificateSerial && after.tlsGeneration == before.tlsGeneration + 1)
        #expect(try await gate.renewalInfo().serial == serial, "the new certificate authenticates")
        // The old certificate stays valid in Azure (the enrollment's secondary) but no longer speaks
        // for the device at Keygate: a copy of an old key must not outlive the renewal.
        #expect(
            await Self.apiCode { _ = try await gate.client.renewalInfo(identity: oldIdentity) }
                == "clientCertificateInvalid")
        #expect(
            await Self.apiCode { _ = try await gate.client.renew(.init(csr: csr), identity: oldIdentity) }
                == "clientCertificateInvalid")

        // A rotation asks every device with an older certificate, paced in device-ID order: one per minute.
        let (rotation, progress) = try await h.kg.server.services.lifecycle.startRotation(
            group: "fleet", perMinute: 1, reason: "new issuing CA", actor: "admin:test")
        #expect(progress.devices == 3 && progress.renewed == 0)
        let second = try await enrollments["gate-2"]!.renewalInfo()
        let third = try await enrollments["gate-3"]!.renewalInfo()
        #expect(second.reason == "rotation" && second.renewAfter <= Date() + 60)
        #expect(third.reason == "rotation" && third.renewAfter > rotation.startedAt + 100)
        _ = try await enrollments["gate-2"]!.renew()
        let progressed = try await h.kg.store.rotationProgress(rotation, now: Date())
        #expect(progressed.renewed == 1 && progressed.asked == 1)
        #expect(try await enrollments["gate-2"]!.renewalInfo().reason == "window", "renewed: out of the campaign")
    }

    @Test func aDeviceOfflinePastExpiryRenewsWithinTheGraceByReattestingAndIsRefusedAfterIt() async throws {
        let kg = try await TestKeygate.make()
        let onboarding = kg.server.services.enrollment
        try await kg.store.createGroup(
            Group(name: "fleet", policy: .init(renewAfterExpiryDays: 2, validitySeconds: 3600, firstContact: "open")),
            audit: .init(actor: "test", action: "group.created", subject: "fleet"))
        _ = try await kg.store.importAllowlist(
            [AllowlistEntry(deviceID: "tank-1", group: "fleet")], actor: "test")
        let identity = DDKIdentity(deviceID: "tank-1", attributes: DDKAttributes(strings: ["machine-id": "t1"]))
        func enroll(at now: Date, generation: UInt64) async throws -> DeviceAPI.EnrollResponse {
            let challenge = try await onboarding.challenge(deviceID: "tank-1", now: now)
            if challenge.action == "register" {
                _ = try await onboarding.register(try identity.register(challenge), now: now)
                return try await enroll(at: now, generation: generation)
            }
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName("tank-1") },
                privateKey: Certificate.PrivateKey(identity.tlsKey(generation: generation)), attributes: .init()
            ).serializeAsPEM().pemString
            return try await onboarding.enroll(
                .init(
                    deviceId: "tank-1", challengeId: challenge.challengeId, csr: csr,
                    attestation: try identity.authenticate(challenge, payload: DeviceAPI.payload(csrPEM: csr))),
                now: now)
        }
        let first = try await enroll(at: Date(), generation: 0)
        let expiry = try #require(first.notAfter)
        // Offline for a day past expiry: within the two days of grace, re-attesting renews.
        let renewed = try await enroll(at: expiry + 86_400, generation: 1)
        #expect(renewed.status == "enrolled" && renewed.serial != first.serial)
        let events = try await kg.store.auditEvents(subject: "tank-1", since: nil, limit: 20)
        #expect(events.contains { $0.action == "certificate.renewed" && $0.details["previous"] == first.serial })
        // Offline three days past the new certificate's expiry: refused until re-authorized.
        let late = try #require(renewed.notAfter) + 3 * 86_400
        #expect(await errorCode { _ = try await enroll(at: late, generation: 2) } == "renewalGraceExpired")
        let device = try #require(try await kg.store.device(id: "tank-1"))
        #expect(device.state == .enrolled && device.ddkEpoch >= 2, "a refusal leaves the device as it was")
        _ = try await kg.server.services.lifecycle.quarantine(
            deviceID: "tank-1", reason: "offline too long", actor: "admin:test", now: late)
        _ = try await kg.server.services.lifecycle.reauthorize(deviceID: "tank-1", actor: "admin:test", now: late)
        #expect(try await enroll(at: late, generation: 2).status == "enrolled")
    }
}

extension LifecycleTests {
    @Test func aDDKDeviceWhoseAttributesChangedRegistersAgainOnlyWhenReauthorizedToAndItIsAudited() async throws {
        let h = try await Harness.make(.init(), devices: ["kiosk-1"])
        defer { Task { await h.stop() } }
        let original = try h.enrollment("kiosk-1", .ddk(attributes: DDKAttributes(strings: ["disk": "a"]), seed: []))
        guard case .enrolled(let first, _) = try await original.run() else { return }
        // A new disk: the derived keys change; the old epoch key no longer matches.
        let repaired = Enrollment(
            deviceID: "kiosk-1", credential: .ddk(attributes: DDKAttributes(strings: ["disk": "b"]), seed: []),
            client: original.client, folder: original.folder)
        let refused = await Self.apiCode { _ = try await repaired.run() }
        #expect(refused == "attestationFailed", "\(refused)")
        #expect(try await h.kg.store.device(id: "kiosk-1")?.state == .enrolled, "a failed proof is no clone")
        _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: "kiosk-1", reason: "hardware repair", actor: "admin:test")
        _ = try await h.kg.server.services.lifecycle.reauthorize(deviceID: "kiosk-1", actor: "admin:test")
        #expect(await Self.apiCode { _ = try await repaired.run() } != "none", "plain re-authorization keeps the keys")

        _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: "kiosk-1", reason: "hardware repair", actor: "admin:test")
        _ = try await h.kg.server.services.lifecycle.reauthorize(deviceID: "kiosk-1", actor: "admin:test", allowReregistration: true)
        guard case .enrolled(let second, _) = try await repaired.run() else {
            Issue.record("the repaired device did not enroll")
            return
        }
        #expect(second != first)
        let events = try await h.kg.store.auditEvents(subject: "kiosk-1", since: nil, limit: 50)
        #expect(events.contains { $0.action == "device.reauthorized" && $0.details["reregistration"] == "allowed" })
        #expect(events.contains { $0.action == "device.registered" && $0.details["reregistration"] == "yes" })
    }
}

extension LifecycleTests {
    /// The agent's side of renewal after expiry: its expired certificate no longer opens an mTLS
    /// renewal, and re-attesting (DDK here) renews it within the group's grace.
    @Test func anAgentWhoseCertificateExpiredRenewsByReattesting() async throws {
        let h = try await Harness.make(.init(validitySeconds: 60), devices: ["buoy-1"])
        defer { Task { await h.stop() } }
        let enrollment = try h.enrollment("buoy-1", Self.ddk("buoy-1"))
        guard case .enrolled(let first, let notAfter) = try await enrollment.run() else { return }
        // Offline until the certificate expired (bounded: the validity is one minute).
        let wait = notAfter.timeIntervalSinceNow + 2
        if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
        let refused = await Self.apiCode { _ = try await enrollment.renew() }
        #expect(refused == "clientCertificateInvalid", "an expired certificate does not renew over mTLS: \(refused)")
        guard case .enrolled(let second, let newNotAfter) = try await enrollment.run() else {
            Issue.record("re-attesting did not renew")
            return
        }
        #expect(second != first && newNotAfter > Date())
        let events = try await h.kg.server.store.auditEvents(subject: "buoy-1", since: nil, limit: 20)
        #expect(events.contains { $0.action == "certificate.renewed" && $0.details["previous"] == first })
        #expect(try await enrollment.renewalInfo().serial == second, "the new certificate authenticates")
    }
}
