import Crypto
import Foundation
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import SwiftASN1
import Testing
import X509

/// The device API's rules, driven through the onboarding service.
@Suite struct DeviceOnboardingTests {
    let attributes = DDKAttributes(strings: ["machine-id": "a1b2c3", "mac:eth0": "02:00:00:00:00:01"])

    func setUp(
        _ policy: Group.Policy = .init(), devices: [String] = ["dev-1", "dev-2"], pinned: [String: String] = [:]
    )
        async throws -> TestKeygate
    {
        let kg = try await TestKeygate.make()
        try await kg.server.store.createGroup(
            Group(name: "fleet", policy: policy), audit: .init(actor: "test", action: "group.created", subject: "fleet")
        )
        _ = try await kg.server.store.importAllowlist(
            devices.map { AllowlistEntry(deviceID: $0, group: "fleet", pinnedKey: pinned[$0]) }, actor: "test")
        return kg
    }

    func csr(_ key: Certificate.PrivateKey, commonName: String = "whatever") throws -> String {
        try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(commonName) }, privateKey: key,
            attributes: .init()
        ).serializeAsPEM().pemString
    }

    func code(_ body: () async throws -> Void) async -> String { await errorCode(body) }

    @Test func aDeviceNotOnTheAllowlistLeavesOnlyAnAuditEvent() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let before = try await kg.store.auditEvents(subject: nil, since: nil, limit: 1000).count
        let devicesBefore = try await kg.store.deviceCounts().values.reduce(0, +)
        #expect(await code { _ = try await onboarding.challenge(deviceID: "stranger") } == "deviceNotAllowlisted")
        let events = try await kg.store.auditEvents(subject: "stranger", since: nil, limit: 10)
        #expect(events.map(\.action) == ["device.refused"])
        #expect(try await kg.store.auditEvents(subject: nil, since: nil, limit: 1000).count == before + 1)
        #expect(try await kg.store.deviceCounts().values.reduce(0, +) == devicesBefore)
        #expect(try await kg.store.device(id: "stranger") == nil)
    }

    @Test func ddkRegistersAuthenticatesAndRotatesTheKeyEverySession() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let identity = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        let first = try await onboarding.challenge(deviceID: "dev-1")
        #expect(first.action == "register" && first.epoch == 0)
        let registration = try identity.register(first)
        _ = try await onboarding.register(registration)
        // The same registration again: the challenge is spent.
        #expect(await code { _ = try await onboarding.register(registration) } == "challengeInvalid")

        var seenKeys: [[UInt8]] = []
        for session in 1...3 {
            let challenge = try await onboarding.challenge(deviceID: "dev-1")
            #expect(challenge.epoch == session && challenge.action == "authenticate")
            let expected = try #require(try await kg.store.ddkPublicKey(deviceID: "dev-1", epoch: session))
            seenKeys.append(expected)
            let attestation = try identity.authenticate(challenge, payload: DeviceAPI.statusPayload)
            let status = try await onboarding.status(
                .init(deviceId: "dev-1", challengeId: challenge.challengeId, attestation: attestation))
            #expect(status.epoch == session + 1)
            // Replaying the same authenticated request fails.
            let replay = await code {
                _ = try await onboarding.status(
                    .init(deviceId: "dev-1", challengeId: challenge.challengeId, attestation: attestation))
            }
            #expect(replay == "challengeInvalid")
        }
        #expect(Set(seenKeys).count == 3, "each session used a new key")
        let device = try #require(try await kg.store.device(id: "dev-1"))
        #expect(device.state == .registered && device.ddkEpoch == 4)
    }

    @Test func challengesExpireAndBelongToOneDevice() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let identity = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        let old = try await onboarding.challenge(deviceID: "dev-1", now: Date() - 120)
        #expect(await code { _ = try await onboarding.register(try identity.register(old)) } == "challengeInvalid")
        // A challenge issued to dev-2, used by dev-1.
        let other = try await onboarding.challenge(deviceID: "dev-2")
        #expect(await code { _ = try await onboarding.register(try identity.register(other)) } == "challengeInvalid")
        // A fresh one works.
        _ = try await onboarding.register(try identity.register(try await onboarding.challenge(deviceID: "dev-1")))
    }

    @Test func aPinnedKeyMustMatch() async throws {
        let genuine = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        let kg = try await setUp(pinned: ["dev-1": Base64URL.encode(genuine.epochPublicKey(0))])
        let onboarding = kg.server.services.enrollment
        let impostor = DDKIdentity(deviceID: "dev-1", attributes: DDKAttributes(strings: ["machine-id": "other"]))
        #expect(
            await code {
                _ = try await onboarding.register(
                    try impostor.register(try await onboarding.challenge(deviceID: "dev-1")))
            }
                == "pinnedKeyMismatch")
        _ = try await onboarding.register(try genuine.register(try await onboarding.challenge(deviceID: "dev-1")))
        #expect(try await kg.store.device(id: "dev-1")?.state == .registered)
    }

    @Test func aOneTimeEnrollmentTokenIsRequiredWhenSet() async throws {
        let kg = try await TestKeygate.make()
        let onboarding = kg.server.services.enrollment
        try await kg.store.createGroup(
            Group(name: "fleet", policy: .init()), audit: .init(actor: "t", action: "group.created", subject: "fleet"))
        let token = AdminTokenSecret.generate()
        _ = try await kg.store.importAllowlist(
            [AllowlistEntry(deviceID: "dev-1", group: "fleet", tokenHash: AdminTokenSecret.hash(token))], actor: "t")
        let identity = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        var request = try identity.register(try await onboarding.challenge(deviceID: "dev-1"))
        #expect(await code { _ = try await onboarding.register(request) } == "enrollmentTokenInvalid")
        request = try identity.register(try await onboarding.challenge(deviceID: "dev-1"))
        request.enrollmentToken = "kg_wrong"
        #expect(await code { _ = try await onboarding.register(request) } == "enrollmentTokenInvalid")
        request = try identity.register(try await onboarding.challenge(deviceID: "dev-1"))
        request.enrollmentToken = token
        _ = try await onboarding.register(request)
        #expect(try await kg.store.allowlistEntry(deviceID: "dev-1")?.tokenUsed == true)
    }

    /// An attacker who lifted one session key uses it; the genuine device's next session exposes the fork.
    @Test func aClonedSessionKeyIsDetected() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let genuine = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        _ = try await onboarding.register(try genuine.register(try await onboarding.challenge(deviceID: "dev-1")))

        // The attacker holds K_1 (read from the device's memory during a session) and its own next key.
        let stolen = genuine.epochKey(1)
        let attackerNext = P256.Signing.PrivateKey()
        let challenge = try await onboarding.challenge(deviceID: "dev-1")
        let message = DDKProtocol.authenticationMessage(
            audience: challenge.audience, deviceID: "dev-1", nonce: try challenge.nonceBytes, epoch: 1,
            nextPublicKey: Array(attackerNext.publicKey.derRepresentation), payload: DeviceAPI.statusPayload)
        let forged = DeviceAPI.Attestation(
            method: .ddk, epoch: 1, nextPublicKey: Base64URL.encode(Array(attackerNext.publicKey.derRepresentation)),
            signature: Base64URL.encode(Array(try stolen.signature(for: message).derRepresentation)))
        _ = try await onboarding.status(
            .init(deviceId: "dev-1", challengeId: challenge.challengeId, attestation: forged))

        // The genuine device comes back: its epoch-2 key does not match what the attacker registered.
        let next = try await onboarding.challenge(deviceID: "dev-1")
        let attempt = await code {
            _ = try await onboarding.status(
                .init(
                    deviceId: "dev-1", challengeId: next.challengeId,
                    attestation: try genuine.authenticate(next, payload: DeviceAPI.statusPayload)))
        }
        #expect(attempt == "forkProofRequired")
        let proofChallenge = try await onboarding.challenge(deviceID: "dev-1")
        // The genuine device's last good session moved the server to epoch 1: it proves K_1.
        let proof = try genuine.forkProof(proofChallenge, proofEpoch: 1)
        #expect(await code { try await onboarding.forkProof(proof) } == "deviceQuarantined")

        let device = try #require(try await kg.store.device(id: "dev-1"))
        #expect(device.state == .quarantined && device.stateReason == "cloneSuspected")
        let events = try await kg.store.auditEvents(subject: "dev-1", since: nil, limit: 50)
        let quarantine = try #require(events.first { $0.action == "device.quarantined" })
        #expect(quarantine.details["reason"] == "cloneSuspected")
        #expect(quarantine.details["evidence"]?.contains("different epoch-2 key") == true)
        // Neither party gets in any more.
        #expect(await code { _ = try await onboarding.challenge(deviceID: "dev-1") } == "deviceQuarantined")
    }

    /// The clone ran several sessions (and enrolled) before the genuine device came back: the device
    /// proves the epoch of its own last session, the fork still shows, and the clone's certificate is held.
    @Test func aCloneThatRanSeveralSessionsIsStillDetectedAndItsCertificateRevoked() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let genuine = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        _ = try await onboarding.register(try genuine.register(try await onboarding.challenge(deviceID: "dev-1")))
        // The attacker lifted K_1 and from then on uses keys of its own.
        var attackerKey = genuine.epochKey(1)
        for epoch in 1...3 {
            let challenge = try await onboarding.challenge(deviceID: "dev-1")
            #expect(challenge.epoch == epoch)
            let next = P256.Signing.PrivateKey()
            let key = attackerKey
            let csrPEM = try csr(.init(P256.Signing.PrivateKey()))
            let payload = epoch == 3 ? DeviceAPI.payload(csrPEM: csrPEM) : DeviceAPI.statusPayload
            let message = DDKProtocol.authenticationMessage(
                audience: challenge.audience, deviceID: "dev-1", nonce: try challenge.nonceBytes, epoch: UInt64(epoch),
                nextPublicKey: Array(next.publicKey.derRepresentation), payload: payload)
            let forged = DeviceAPI.Attestation(
                method: .ddk, epoch: epoch, nextPublicKey: Base64URL.encode(Array(next.publicKey.derRepresentation)),
                signature: Base64URL.encode(Array(try key.signature(for: message).derRepresentation)))
            if epoch == 3 {
                let answer = try await onboarding.enroll(
                    .init(deviceId: "dev-1", challengeId: challenge.challengeId, csr: csrPEM, attestation: forged))
                #expect(answer.status == "enrolled")
            } else {
                _ = try await onboarding.status(
                    .init(deviceId: "dev-1", challengeId: challenge.challengeId, attestation: forged))
            }
            attackerKey = next
        }
        let cloneSerial = try #require(
            try await kg.store.certificates(matching: .init(deviceID: "dev-1")).first?.serial)
        // The genuine device's last good session was registration: the server moved to epoch 1.
        let proof = try genuine.forkProof(try await onboarding.challenge(deviceID: "dev-1"), proofEpoch: 1)
        #expect(await code { try await onboarding.forkProof(proof) } == "deviceQuarantined")
        #expect(try await kg.store.device(id: "dev-1")?.stateReason == "cloneSuspected")
        // Someone else holds the key: revoked for good (keyCompromise), even under the hold policy.
        let revoked = try await kg.store.certificate(serial: cloneSerial)
        #expect(revoked?.status == .revoked && revoked?.revocationReason == .keyCompromise)
        let crl = try await kg.server.services.certificates.crl.current()
        #expect(crl.entryCount == 1, "the revoked certificate is on the next CRL")
    }

    @Test func aTokenCannotBeBypassedAndDDKKeysCannotBeDowngraded() async throws {
        let kg = try await TestKeygate.make()
        let onboarding = kg.server.services.enrollment
        let groupKey = SymmetricKeyAttestation.generateGroupKey()
        try await kg.store.createGroup(
            Group(
                name: "fleet",
                policy: .init(
                    attestationMethods: ["ddk", "symmetric-key"], sealedGroupKey: try kg.secrets.seal(groupKey)
                )),
            audit: .init(actor: "t", action: "group.created", subject: "fleet"))
        let token = AdminTokenSecret.generate()
        _ = try await kg.store.importAllowlist(
            [
                AllowlistEntry(deviceID: "tok-1", group: "fleet", tokenHash: AdminTokenSecret.hash(token)),
                AllowlistEntry(deviceID: "ddk-1", group: "fleet"),
            ], actor: "t")
        func enroll(_ id: String, token: String? = nil) async -> String {
            await code {
                let csrPEM = try csr(.init(P256.Signing.PrivateKey()))
                let challenge = try await onboarding.challenge(deviceID: id)
                let attestation = try SymmetricKeyAttestation.attest(
                    challenge, deviceID: id,
                    deviceKey: try SymmetricKeyAttestation.deriveDeviceKey(groupKey: groupKey, deviceID: id),
                    payload: DeviceAPI.payload(csrPEM: csrPEM))
                _ = try await onboarding.enroll(
                    .init(
                        deviceId: id, challengeId: challenge.challengeId, csr: csrPEM, attestation: attestation,
                        enrollmentToken: token))
            }
        }
        #expect(await enroll("tok-1") == "enrollmentTokenInvalid")
        #expect(await enroll("tok-1", token: token) == "none")
        // ddk-1 registers DDK keys; the group key must not take its identity over.
        _ = try await onboarding.register(
            try DDKIdentity(deviceID: "ddk-1", attributes: attributes).register(
                try await onboarding.challenge(deviceID: "ddk-1")))
        #expect(await enroll("ddk-1") == "attestationMethodNotAllowed")
    }

    @Test func changedAttributesFailAndRepeatedFailuresLock() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let genuine = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        _ = try await onboarding.register(try genuine.register(try await onboarding.challenge(deviceID: "dev-1")))
        var changedAttributes = attributes
        changedAttributes.values["mac:eth0"] = Array("02:00:00:00:00:99".utf8)
        let changed = DDKIdentity(deviceID: "dev-1", attributes: changedAttributes)
        var codes: [String] = []
        for _ in 0..<6 {
            let challenge: DeviceAPI.Challenge
            do { challenge = try await onboarding.challenge(deviceID: "dev-1") } catch let error as KeygateError {
                codes.append(error.code.rawValue)
                continue
            }
            let first = await code {
                _ = try await onboarding.status(
                    .init(
                        deviceId: "dev-1", challengeId: challenge.challengeId,
                        attestation: try changed.authenticate(challenge, payload: DeviceAPI.statusPayload)))
            }
            guard first == "forkProofRequired" else {
                codes.append(first)
                continue
            }
            let proof = await code {
                try await onboarding.forkProof(
                    try changed.forkProof(
                        try await onboarding.challenge(deviceID: "dev-1"), proofEpoch: challenge.epoch - 1))
            }
            codes.append(proof)
        }
        #expect(codes.first == "attestationFailed")
        #expect(codes.contains("deviceLocked"))
        #expect(codes.last == "deviceLocked")
        let device = try #require(try await kg.store.device(id: "dev-1"))
        #expect(device.isLocked() && device.state == .registered, "a lock is not a quarantine")
    }
}
