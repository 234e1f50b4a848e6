import Foundation
import KeygateAgent
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Testing

/// The DDK ratchet in process: a caught clone reaches DPS through the outbox, a genuine device never
/// forks, a device from before the ratchet moves to it by itself, a re-flashed device needs an operator.
@Suite(.tags(.slow), .fullRunOnly) struct DDKRatchetTests {
    typealias Harness = AgentEnrollmentTests.Harness

    static func credential(_ device: String) -> Enrollment.Credential {
        .ddk(attributes: DDKAttributes(strings: ["serial": device]), seed: [])
    }

    func copy(_ h: Harness, _ enrollment: Enrollment, to name: String) throws -> Enrollment {
        let target = h.folder.file(name)
        try FileManager.default.copyItem(atPath: enrollment.folder.path, toPath: target)
        return Enrollment(
            deviceID: enrollment.deviceID, credential: enrollment.credential, client: enrollment.client,
            folder: try StateFolder(path: target))
    }

    static func code(_ body: () async throws -> Void) async -> String {
        do {
            try await body()
            return "none"
        } catch let error as DeviceClient.APIError {
            return error.code
        } catch let error as AgentError {
            return error.code ?? error.description
        } catch {
            return "\(error)"
        }
    }

    @Test func aCaughtCloneIsRevokedAndItsDPSEnrollmentDisabledThroughTheOutbox() async throws {
        let folder = try TemporaryDirectory("ratchet-dps")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let h = try await Harness.make(.init(), devices: ["cam-1"])
        defer { Task { await h.stop() } }
        try await ConnectorFlowTests.connect(h, sandbox: sandbox.connection)
        let original = try h.enrollment("cam-1", Self.credential("cam-1"))
        guard case .enrolled(let serial, _) = try await original.run() else { return }
        #expect(try await ConnectorFlowTests.waitConfirmed(h.kg.store, ["cam-1"]))
        let clone = try copy(h, original, to: "clone")
        _ = try await clone.status()
        _ = try await clone.status()
        // Keygate is past the original's epoch: its fork proof gets the device quarantined.
        #expect(await Self.code { _ = try await original.status() } == "deviceQuarantined")
        let device = try #require(try await h.kg.store.device(id: "cam-1"))
        #expect(device.state == .quarantined && device.stateReason == "cloneSuspected")
        let record = try #require(try await h.kg.store.certificate(serial: serial))
        #expect(record.status == .revoked && record.revocationReason == .keyCompromise)
        #expect(try await AzureShapesTests.settled(h.kg.store, "cam-1"))
        let enrollment = try await SandboxControlClient(connection: sandbox.connection).inventory().enrollments
            .first { $0.id == "cam-1" }
        #expect(enrollment?.provisioningStatus == "disabled")
        let audit = try await h.kg.store.auditEvents(subject: "cam-1", since: nil, limit: 20)
        #expect(audit.contains { $0.action == "device.quarantined" && $0.details["reason"] == "cloneSuspected" })
    }

    @Test func aThousandSessionsOfAGenuineDeviceNeverFork() async throws {
        let h = try await Harness.make(.init(), devices: ["cam-2"])
        defer { Task { await h.stop() } }
        let device = try h.enrollment("cam-2", Self.credential("cam-2"))
        _ = try await device.run()
        let start = try #require(try await h.kg.store.device(id: "cam-2")).ddkEpoch
        for _ in 0..<1000 { _ = try await device.status() }
        let after = try #require(try await h.kg.store.device(id: "cam-2"))
        #expect(after.state == .enrolled && after.ddkEpoch == start + 1000)
        #expect(device.folder.loadChain()?.epoch == after.ddkEpoch)
    }

    @Test func aDeviceFromBeforeTheRatchetMovesToItAtItsNextSession() async throws {
        let h = try await Harness.make(.init(), devices: ["cam-3"])
        defer { Task { await h.stop() } }
        // Registered as agents before the ratchet did: every key from the attributes alone.
        let attributes = DDKAttributes(strings: ["serial": "cam-3"])
        let identity = DDKIdentity(deviceID: "cam-3", attributes: attributes)
        let device = try h.enrollment("cam-3", .ddk(attributes: attributes, seed: []))
        _ = try await device.client.register(try identity.register(try await device.client.challenge("cam-3")))
        let challenge = try await device.client.challenge("cam-3")
        _ = try await device.client.status(
            .init(
                deviceId: "cam-3", challengeId: challenge.challengeId,
                attestation: try identity.authenticate(challenge, payload: DeviceAPI.statusPayload)))
        var legacy = AgentState(deviceId: "cam-3", server: h.server.httpsURL, attestation: "ddk")
        legacy.ddkEpoch = try #require(try await h.kg.store.device(id: "cam-3")).ddkEpoch
        try device.folder.save(legacy)
        #expect(!FileManager.default.fileExists(atPath: device.folder.chainFile))

        _ = try await device.status()
        let chain = try #require(device.folder.loadChain())
        #expect(chain.secret != nil, "the next key came from a session secret")
        _ = try await device.status()
        // From now on a copy is caught like any other.
        let clone = try copy(h, device, to: "cam-3-clone")
        _ = try await clone.status()
        #expect(await Self.code { _ = try await device.status() } == "deviceQuarantined")
        #expect(try await h.kg.store.device(id: "cam-3")?.stateReason == "cloneSuspected")
    }

    @Test func aReflashedDeviceSaysSoAndRegistersAgainOnceAnOperatorAllowsIt() async throws {
        let h = try await Harness.make(.init(), devices: ["cam-4"])
        defer { Task { await h.stop() } }
        let device = try h.enrollment("cam-4", Self.credential("cam-4"))
        _ = try await device.run()
        try FileManager.default.removeItem(atPath: device.folder.path)
        let reflashed = try h.enrollment("cam-4", Self.credential("cam-4"))
        #expect(await Self.code { _ = try await reflashed.status() } == "ddkStateMissing")
        #expect(try await h.kg.store.device(id: "cam-4")?.state == .enrolled, "a missing chain is no fork")
        _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: "cam-4", reason: "reflashed", actor: "test")
        _ = try await h.kg.server.services.lifecycle.reauthorize(
            deviceID: "cam-4", actor: "test", allowReregistration: true)
        guard case .enrolled = try await reflashed.run() else {
            Issue.record("the re-flashed device did not enroll again")
            return
        }
        let events = try await h.kg.store.auditEvents(subject: "cam-4", since: nil, limit: 30)
        #expect(events.contains { $0.action == "device.registered" && $0.details["reregistration"] == "yes" })
    }
}
