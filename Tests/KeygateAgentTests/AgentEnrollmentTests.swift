import AsyncHTTPClient
import Crypto
import Foundation
import KeygateAgent
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import NIOSSL
import SwiftASN1
import Testing
import X509

/// The agent's enrollment over real HTTPS against an in-process server.
@Suite struct AgentEnrollmentTests {
    struct Harness {
        let kg: TestKeygate
        let server: RunningServer
        let folder: TemporaryDirectory
        let http: HTTPClient

        init(kg: TestKeygate, server: RunningServer, folder: TemporaryDirectory) {
            self.kg = kg
            self.server = server
            self.folder = folder
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(kg.rootPath)
            http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        }

        /// A server with group `fleet` (first contact `open`: these tests are about what follows it) and
        /// `devices` allowlisted, running.
        static func make(_ policy: Group.Policy, devices: [String]) async throws -> Harness {
            let kg = try await TestKeygate.make()
            var policy = policy
            policy.firstContact = "open"
            try await kg.server.store.createGroup(
                Group(name: "fleet", policy: policy),
                audit: .init(actor: "test", action: "group.created", subject: "fleet"))
            _ = try await kg.server.store.importAllowlist(
                devices.map { AllowlistEntry(deviceID: $0, group: "fleet") }, actor: "test")
            return Harness(kg: kg, server: try await kg.start(), folder: try TemporaryDirectory("agent"))
        }

        func enrollment(_ deviceID: String, _ credential: Enrollment.Credential) throws -> Enrollment {
            Enrollment(
                deviceID: deviceID, credential: credential,
                client: try DeviceClient(baseURL: server.httpsURL, caCertificateFile: kg.rootPath, http: http),
                folder: try StateFolder(path: folder.file("state-\(deviceID)")))
        }

        func stop() async {
            try? await http.shutdown()
            await server.stop()
        }
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func ddkEnrollmentGivesAChainOpenSSLVerifiesWithTheAssignedName() async throws {
        let h = try await Harness.make(.init(firstContact: "open"), devices: ["sensor-7"])
        defer { Task { await h.stop() } }
        let enrollment = try h.enrollment(
            "sensor-7", .ddk(attributes: DDKAttributes(strings: ["machine-id": "m7"]), seed: []))
        let outcome = try await enrollment.run()
        guard case .enrolled(let serial, _) = outcome else { Issue.record("not enrolled: \(outcome)"); return }
        let chain = try String(contentsOfFile: enrollment.folder.certificateFile, encoding: .utf8)
        let leaf = try Certificate(pemEncoded: splitFirst(chain))
        #expect(leaf.subject.description == "CN=sensor-7")
        #expect(leaf.serialNumber.hex == serial)
        // The derived TLS key is the certificate's key; no key file is written for DDK.
        let identity = DDKIdentity(deviceID: "sensor-7", attributes: DDKAttributes(strings: ["machine-id": "m7"]))
        #expect(leaf.publicKey == Certificate.PublicKey(identity.tlsKey(generation: 0).publicKey))
        #expect(!FileManager.default.fileExists(atPath: enrollment.folder.keyFile))
        let device = try await h.kg.server.store.device(id: "sensor-7")
        #expect(device?.state == .enrolled && device?.attestationMethod == "ddk" && device?.assuranceLevel == 2)
        #expect(try await h.kg.server.store.certificate(serial: serial)?.deviceID == "sensor-7")

        guard ExternalTool.available("openssl") else { return }
        let verify = try await ExternalTool.openssl.run([
            "verify", "-CAfile", h.kg.rootPath, "-untrusted", h.kg.issuingPath, enrollment.folder.certificateFile,
        ])
        #expect(verify.status == 0, "\(verify.combined)")

        // Status is an attested session too.
        let status = try await enrollment.status()
        #expect(status.state == "enrolled" && status.certificateSerial == serial)
    }

    @Test func changedAttributesEndInAttestationFailed() async throws {
        let h = try await Harness.make(.init(firstContact: "open"), devices: ["sensor-8"])
        defer { Task { await h.stop() } }
        _ = try await h.enrollment("sensor-8", .ddk(attributes: DDKAttributes(strings: ["mac:eth0": "a"]), seed: []))
            .run()
        let changed = try h.enrollment(
            "sensor-8", .ddk(attributes: DDKAttributes(strings: ["mac:eth0": "b"]), seed: []))
        let code: String
        do {
            _ = try await changed.run()
            code = "none"
        } catch let error as DeviceClient.APIError {
            code = error.code
        }
        #expect(code == "attestationFailed")
    }

    @Test func bootstrapCertificatesFromTheGroupsCAWork() async throws {
        let manufacturer = try await TestPKI.make()
        let otherManufacturer = try await TestPKI.make()
        let policy = Group.Policy(
            attestationMethods: ["x509"], minimumAssurance: 3,
            bootstrapCAs: [try manufacturer.root.certificate.pemString])
        let h = try await Harness.make(policy, devices: ["board-1", "board-2"])
        defer { Task { await h.stop() } }

        func bootstrap(_ pki: TestPKI, name: String) async throws -> Enrollment.Credential {
            let key = P256.Signing.PrivateKey()
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: .init(key),
                attributes: .init())
            let certificate = try await pki.issuing.issue(
                csr: try CSRPolicy().check(try csr.derBytes), profile: .device, identity: .init(commonName: name),
                revocation: nil)
            return .x509(
                chainPEM: [try certificate.pemString, try pki.issuing.certificate.pemString],
                keyPEM: key.pemRepresentation)
        }
        func attempt(_ device: String, _ credential: Enrollment.Credential) async -> String {
            do {
                _ = try await h.enrollment(device, credential).run()
                return "enrolled"
            } catch let error as DeviceClient.APIError {
                return error.code
            } catch {
                return "\(error)"
            }
        }
        #expect(
            await attempt("board-1", try await bootstrap(otherManufacturer, name: "board-1")) == "attestationFailed")
        #expect(await attempt("board-1", try await bootstrap(manufacturer, name: "board-2")) == "attestationFailed")
        #expect(await attempt("board-1", try await bootstrap(manufacturer, name: "board-1")) == "enrolled")
        #expect(try await h.kg.server.store.device(id: "board-1")?.assuranceLevel == 3)
        // DDK is below this group's minimum assurance.
        let ddk = await attempt("board-2", .ddk(attributes: DDKAttributes(strings: ["a": "b"]), seed: []))
        #expect(ddk == "attestationMethodNotAllowed")
    }

    @Test func symmetricKeysDerivedFromTheGroupKeyWork() async throws {
        let kg = try await TestKeygate.make()
        let groupKey = SymmetricKeyAttestation.generateGroupKey()
        let box = kg.secrets
        let policy = Group.Policy(attestationMethods: ["symmetric-key"], sealedGroupKey: try box.seal(groupKey))
        try await kg.server.store.createGroup(
            Group(name: "fleet", policy: policy), audit: .init(actor: "t", action: "group.created", subject: "fleet"))
        _ = try await kg.server.store.importAllowlist(
            [AllowlistEntry(deviceID: "meter-1", group: "fleet")], actor: "t")
        let h = Harness(kg: kg, server: try await kg.start(), folder: try TemporaryDirectory("agent"))
        defer { Task { await h.stop() } }
        let wrong = try SymmetricKeyAttestation.deriveDeviceKey(
            groupKey: SymmetricKeyAttestation.generateGroupKey(), deviceID: "meter-1")
        var code = "none"
        do { _ = try await h.enrollment("meter-1", .symmetricKey(deviceKey: wrong)).run() } catch let error
            as DeviceClient.APIError
        {
            code = error.code
        }
        #expect(code == "attestationFailed")
        let right = try SymmetricKeyAttestation.deriveDeviceKey(groupKey: groupKey, deviceID: "meter-1")
        let outcome = try await h.enrollment("meter-1", .symmetricKey(deviceKey: right)).run()
        guard case .enrolled = outcome else { Issue.record("not enrolled"); return }
        // A random key, kept 0600 in the state folder.
        let keyFile = h.folder.file("state-meter-1/device.key.pem")
        #expect((try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int) == 0o600)
    }

    @Test func theCSRCannotChooseItsIdentityAndTheKeyFollowsThePolicy() async throws {
        let kg = try await TestKeygate.make()
        let groupKey = SymmetricKeyAttestation.generateGroupKey()
        let policy = Group.Policy(
            attestationMethods: ["symmetric-key"], keyAlgorithms: ["ecdsa-p256"],
            sealedGroupKey: try kg.secrets.seal(groupKey))
        try await kg.server.store.createGroup(
            Group(name: "fleet", policy: policy), audit: .init(actor: "t", action: "group.created", subject: "fleet"))
        _ = try await kg.server.store.importAllowlist(
            [AllowlistEntry(deviceID: "cam-1", group: "fleet")], actor: "t")
        let onboarding = kg.server.services.enrollment
        let deviceKey = try SymmetricKeyAttestation.deriveDeviceKey(groupKey: groupKey, deviceID: "cam-1")
        func enroll(_ key: Certificate.PrivateKey) async throws -> DeviceAPI.EnrollResponse {
            let subject = try DistinguishedName { CommonName("admin") }
            let request = try CertificateSigningRequest(
                version: .v1, subject: subject, privateKey: key, attributes: .init())
            let csr = PEMDocument(type: "CERTIFICATE REQUEST", derBytes: try request.derBytes).pemString
            let challenge = try await onboarding.challenge(deviceID: "cam-1")
            let attestation = try SymmetricKeyAttestation.attest(
                challenge, deviceID: "cam-1", deviceKey: deviceKey, payload: DeviceAPI.payload(csrPEM: csr))
            return try await onboarding.enroll(
                .init(deviceId: "cam-1", challengeId: challenge.challengeId, csr: csr, attestation: attestation))
        }
        let p384 = await errorCode { _ = try await enroll(.init(P384.Signing.PrivateKey())) }
        #expect(p384 == "keyAlgorithmNotAllowed")
        let answer = try await enroll(.init(P256.Signing.PrivateKey()))
        let leaf = try Certificate(pemEncoded: splitFirst(answer.certificateChain ?? ""))
        #expect(leaf.subject.description == "CN=cam-1")
    }

    @Test func manualApprovalHoldsTheDeviceUntilApproved() async throws {
        let h = try await Harness.make(.init(approval: "manual", firstContact: "open"), devices: ["gw-1"])
        defer { Task { await h.stop() } }
        let enrollment = try h.enrollment(
            "gw-1", .ddk(attributes: DDKAttributes(strings: ["machine-id": "gw"]), seed: []))
        #expect(try await enrollment.run() == .pendingApproval)
        #expect(try await enrollment.run() == .pendingApproval)
        #expect(try await h.kg.server.store.device(id: "gw-1")?.state == .pendingApproval)
        _ = try await h.kg.server.store.transition(
            deviceID: "gw-1", event: .approved, reason: nil, attestation: nil,
            audit: .init(actor: "admin:test", action: "device.approved", subject: "gw-1"))
        guard case .enrolled = try await enrollment.run() else { Issue.record("not enrolled after approval"); return }
        let actions = try await h.kg.server.store.auditEvents(subject: "gw-1", since: nil, limit: 50).map(
            \.action)
        #expect(
            actions.contains("device.pendingApproval") && actions.contains("device.approved")
                && actions.contains("device.enrolled"))
    }
}

func splitFirst(_ chain: String) -> String {
    (chain.components(separatedBy: "-----END CERTIFICATE-----").first ?? "") + "-----END CERTIFICATE-----\n"
}
