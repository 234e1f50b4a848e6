import AsyncHTTPClient
import Crypto
import Foundation
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import SwiftASN1
import NIOCore
import NIOHTTP1
import Testing
import X509

/// The device API's rules, driven through the onboarding service.
@Suite struct DeviceOnboardingTests {
    let attributes = DDKAttributes(strings: ["machine-id": "a1b2c3", "mac:eth0": "02:00:00:00:00:01"])

    func setUp(
        _ policy: Group.Policy = .init(firstContact: "open"), devices: [String] = ["dev-1", "dev-2"],
        pinned: [String: String] = [:],
        rateLimit: Double = 0
    )
        async throws -> TestKeygate
    {
        let kg = try await TestKeygate.make { $0.deviceRequestsPerSecond = rateLimit }
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

    /// Anyone can send an ID: refusals of IDs not on the allowlist are counted, not written, and a
    /// device's outstanding challenges are capped, so anonymous requests cannot grow the database.
    @Test func anonymousRequestsWriteNothingUnbounded() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let before = try await kg.store.auditEvents(subject: nil, since: nil, limit: 10_000).count
        let devicesBefore = try await kg.store.deviceCounts().values.reduce(0, +)
        for index in 0..<300 {
            #expect(await code { _ = try await onboarding.challenge(deviceID: "stranger-\(index)") } == "deviceNotAllowlisted")
        }
        #expect(try await kg.store.auditEvents(subject: nil, since: nil, limit: 10_000).count == before)
        #expect(try await kg.store.deviceCounts().values.reduce(0, +) == devicesBefore)
        #expect(try await kg.store.device(id: "stranger-0") == nil)
        #expect(
            kg.server.services.certificates.metrics.render().contains(
                "keygate_device_refusals_total{reason=\"deviceNotAllowlisted\"} 300"))

        // 40 challenges for one device: only the newest few are kept; the oldest is no longer usable.
        var challenges: [DeviceAPI.Challenge] = []
        for _ in 0..<40 { challenges.append(try await onboarding.challenge(deviceID: "dev-1")) }
        let identity = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        #expect(await code { _ = try await onboarding.register(try identity.register(challenges[0])) } == "challengeInvalid")
        _ = try await onboarding.register(try identity.register(challenges[39]))
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

    @Test func firstContactNeedsATokenOrAPinnedKeyUnlessTheGroupIsOpen() async throws {
        let kg = try await TestKeygate.make()
        let fleet = kg.server.services.fleet
        let onboarding = kg.server.services.enrollment
        // A group made through the API is `token` unless asked otherwise.
        let (safe, _) = try await fleet.createGroup(GroupRequest(name: "safe"), actor: "t")
        #expect(safe.policy.firstContact == "token")
        let staged = try await fleet.importAllowlist(.init(entries: [.init(deviceId: "a", group: "safe")]), actor: "t")
        let token = try #require(staged.tokens?["a"])
        // Staging again keeps the device's token (nothing changes, no new token).
        let again = try await fleet.importAllowlist(.init(entries: [.init(deviceId: "a", group: "safe")]), actor: "t")
        #expect(again.unchanged == 1 && again.tokens == nil)
        let refused = try await fleet.importAllowlist(
            .init(entries: [.init(deviceId: "n", group: "safe", generateToken: false)]), actor: "t")
        #expect(refused.errors.map(\.code) == ["enrollmentTokenRequired"])
        // An anonymous caller who knows the ID cannot register it; the device with its token can.
        let thief = DDKIdentity(deviceID: "a", attributes: DDKAttributes(strings: ["machine-id": "thief"]))
        #expect(
            await code { _ = try await onboarding.register(try thief.register(try await onboarding.challenge(deviceID: "a"))) }
                == "enrollmentTokenInvalid")
        var request = try DDKIdentity(deviceID: "a", attributes: attributes).register(
            try await onboarding.challenge(deviceID: "a"))
        request.enrollmentToken = token
        #expect(try await onboarding.register(request).state == "registered")
        // A device staged without either (before the policy, or straight into the store) cannot register.
        _ = try await kg.store.importAllowlist([AllowlistEntry(deviceID: "bare", group: "safe")], actor: "t")
        let bare = DDKIdentity(deviceID: "bare", attributes: attributes)
        #expect(
            await code { _ = try await onboarding.register(try bare.register(try await onboarding.challenge(deviceID: "bare"))) }
                == "enrollmentTokenRequired")

        // `pinned`: rows need the epoch-0 key, and only that key registers.
        var pinnedGroup = GroupRequest(name: "pinned")
        pinnedGroup.firstContact = "pinned"
        _ = try await fleet.createGroup(pinnedGroup, actor: "t")
        let device = DDKIdentity(deviceID: "p", attributes: attributes)
        let noKey = try await fleet.importAllowlist(.init(entries: [.init(deviceId: "p", group: "pinned")]), actor: "t")
        #expect(noKey.errors.map(\.code) == ["pinnedKeyRequired"])
        let withKey = try await fleet.importAllowlist(
            .init(entries: [.init(deviceId: "p", group: "pinned", pinnedKey: Base64URL.encode(device.epochPublicKey(0)))]),
            actor: "t")
        #expect(withKey.added == 1 && withKey.tokens == nil)
        let other = DDKIdentity(deviceID: "p", attributes: DDKAttributes(strings: ["machine-id": "other"]))
        #expect(
            await code { _ = try await onboarding.register(try other.register(try await onboarding.challenge(deviceID: "p"))) }
                == "pinnedKeyMismatch")
        #expect(try await onboarding.register(try device.register(try await onboarding.challenge(deviceID: "p"))).state == "registered")

        // `open` is first come, and says so; groups stored before the policy existed read as open.
        var openGroup = GroupRequest(name: "open")
        openGroup.firstContact = "open"
        let (open, _) = try await fleet.createGroup(openGroup, actor: "t")
        #expect(open.policy.firstContactIsOpen && GroupBody(open).firstContact == "open")
        let legacy = try JSONDecoder().decode(Group.Policy.self, from: Data(#"{"attestationMethods":["ddk"]}"#.utf8))
        #expect(legacy.firstContact == "open")
        var bad = GroupRequest(name: "bad")
        bad.firstContact = "maybe"
        #expect(await code { _ = try await fleet.createGroup(bad, actor: "t") } == "invalidPolicy")
    }

    @Test func aTokenCannotBeBypassedAndDDKKeysCannotBeDowngraded() async throws {
        let kg = try await TestKeygate.make()
        let onboarding = kg.server.services.enrollment
        let groupKey = SymmetricKeyAttestation.generateGroupKey()
        try await kg.store.createGroup(
            Group(
                name: "fleet",
                policy: .init(
                    attestationMethods: ["ddk", "symmetric-key"], sealedGroupKey: try kg.secrets.seal(groupKey),
                    firstContact: "open")),
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

    /// Failures are counted per client address: a flood of bad attestations from one address gets
    /// that address refused, never the device, which proves itself from its own address at once.
    @Test func aFloodFromOneAddressLocksOutThatAddressNotTheDevice() async throws {
        let kg = try await setUp()
        let onboarding = kg.server.services.enrollment
        let (attacker, device) = ("203.0.113.66", "198.51.100.7")
        let genuine = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        _ = try await onboarding.register(
            try genuine.register(try await onboarding.challenge(deviceID: "dev-1", client: device)), client: device)
        var changedAttributes = attributes
        changedAttributes.values["mac:eth0"] = Array("02:00:00:00:00:99".utf8)
        let changed = DDKIdentity(deviceID: "dev-1", attributes: changedAttributes)
        var codes: [String] = []
        for _ in 0..<8 {
            codes.append(
                await code {
                    let challenge = try await onboarding.challenge(deviceID: "dev-1", client: attacker)
                    _ = try await onboarding.status(
                        .init(
                            deviceId: "dev-1", challengeId: challenge.challengeId,
                            attestation: try changed.authenticate(challenge, payload: DeviceAPI.statusPayload)),
                        client: attacker)
                })
        }
        #expect(codes.first == "forkProofRequired", "\(codes)")
        #expect(codes.suffix(3).allSatisfy { $0 == "deviceLocked" }, "the flooding address is refused: \(codes)")
        let stored = try #require(try await kg.store.device(id: "dev-1"))
        #expect(!stored.isLocked() && stored.state == .registered, "the device itself is not locked")

        // The genuine device, from its own address, proves itself right away.
        let challenge = try await onboarding.challenge(deviceID: "dev-1", client: device)
        let status = try await onboarding.status(
            .init(
                deviceId: "dev-1", challengeId: challenge.challengeId,
                attestation: try genuine.authenticate(challenge, payload: DeviceAPI.statusPayload)),
            client: device)
        #expect(status.state == "registered")
        // An address that failed for many devices (5 each, 20 in all) is refused for every device.
        let others = (0..<5).map { "unit-\($0)" }
        _ = try await kg.store.importAllowlist(others.map { AllowlistEntry(deviceID: $0, group: "fleet") }, actor: "test")
        for other in others {
            let identity = DDKIdentity(deviceID: other, attributes: attributes)
            _ = try await onboarding.register(
                try identity.register(try await onboarding.challenge(deviceID: other, client: device)), client: device)
        }
        for other in others.prefix(4) {
            let wrong = DDKIdentity(deviceID: other, attributes: changedAttributes)
            for _ in 0..<5 {
                _ = await code {
                    let challenge = try await onboarding.challenge(deviceID: other, client: "203.0.113.99")
                    _ = try await onboarding.status(
                        .init(
                            deviceId: other, challengeId: challenge.challengeId,
                            attestation: try wrong.authenticate(challenge, payload: DeviceAPI.statusPayload)),
                        client: "203.0.113.99")
                }
            }
        }
        #expect(
            await code { _ = try await onboarding.challenge(deviceID: "unit-4", client: "203.0.113.99") } == "deviceLocked")
        #expect(await code { _ = try await onboarding.challenge(deviceID: "unit-4", client: device) } == "none")
        let audited = try await kg.store.auditEvents(subject: "dev-1", since: nil, limit: 100)
        #expect(audited.contains { $0.action == "device.attestationFailed" && $0.details["client"] == attacker })
    }

    /// Every device API route is rate-limited per client address over HTTP: 429 with Retry-After.
    @Test func aFloodOfRequestsFromOneAddressIsThrottled() async throws {
        let kg = try await setUp(rateLimit: 0.2)  // one request, then one every 5 s
        let server = try await kg.start()
        defer { Task { await server.stop() } }
        let http = HTTPClient.trusting(kg.rootPath)
        defer { Task { try? await http.shutdown() } }
        var statuses: [UInt] = []
        var retryAfter: String?
        for _ in 0..<6 {
            var request = HTTPClientRequest(url: server.httpsURL + "/device/v1/challenge")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"deviceId":"dev-1"}"#))
            let response = try await http.execute(request, timeout: .seconds(10))
            statuses.append(response.status.code)
            if response.status == .tooManyRequests {
                retryAfter = response.headers.first(name: "Retry-After")
                let body = String(buffer: try await response.body.collect(upTo: 1 << 16))
                #expect(body.contains("rateLimited"), "\(body)")
            } else {
                _ = try await response.body.collect(upTo: 1 << 16)
            }
        }
        #expect(statuses.first == 201, "the first request is served: \(statuses)")
        #expect(statuses.contains(429), "then the address is throttled: \(statuses)")
        #expect(retryAfter.flatMap(Int.init).map { $0 >= 1 } == true)
    }
}
