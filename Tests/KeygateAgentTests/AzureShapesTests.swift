import AsyncHTTPClient
import Foundation
import KeygateAgent
import KeygateAttestation
import KeygateDomain
import KeygateSandbox
import KeygateServer
import KeygateStore
import KeygateTestSupport
import NIOSSL
import Testing

/// The lifecycle against a sandbox that answers as Azure does (a DPS GET gives certificate `info`,
/// never the certificate; a PUT without one is refused): quarantine, re-authorization, renewal and
/// retirement reach DPS and IoT Hub, and the sandbox sees no request Azure would refuse.
@Suite(.tags(.slow), .fullRunOnly) struct AzureShapesTests {
    typealias Harness = AgentEnrollmentTests.Harness

    /// Waits (bounded) until every outbox item of the device is delivered.
    static func settled(_ store: any ServerStore, _ deviceID: String) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let items = try await store.outboxItems(state: nil, deviceID: deviceID, limit: 50)
            if items.allSatisfy({ $0.state == .delivered }) { return true }
            if let dead = items.first(where: { $0.state == .deadLetter }) {
                Issue.record("dead letter: \(dead.lastError ?? "")")
                return false
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    static func runnerOptions(_ connection: SandboxServer.Connection) throws -> DeviceRunner.Options {
        var options = DeviceRunner.Options()
        options.azureTrust = try NIOSSLCertificate.fromPEMFile(connection.caCertificate)
        options.dpsHTTPSPort = URL(string: connection.baseURL)?.port ?? 443
        options.mqttPort = connection.dps.mqttPort ?? 8883
        options.telemetryInterval = .milliseconds(50)
        options.messages = 1
        return options
    }

    @Test func quarantineReauthorizationRenewalAndRetirementReachAzureAsValidRequests() async throws {
        let folder = try TemporaryDirectory("azure-shapes")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let devices = ["pump-1", "pump-2", "pump-3"]
        let h = try await Harness.make(.init(), devices: devices)
        defer { Task { await h.stop() } }
        try await ConnectorFlowTests.connect(h, sandbox: sandbox.connection)
        let store = h.kg.store
        let control = SandboxControlClient(connection: sandbox.connection)
        var enrollments: [String: Enrollment] = [:]
        for device in devices {
            let enrollment = try h.enrollment(device, .ddk(attributes: DDKAttributes(strings: ["id": device]), seed: []))
            enrollments[device] = enrollment
            // Steps 3 to 9: enrolled, confirmed in DPS, registered (DPS creates the hub identity), connected.
            try await DeviceRunner(enrollment: enrollment, options: try Self.runnerOptions(sandbox.connection)).run()
        }
        func enrollment(_ id: String) async throws -> SandboxInventory.Enrollment? {
            let inventory = try await control.inventory()
            return inventory.enrollments.first(where: { $0.id == id })
        }
        func hubStatus(_ id: String) async throws -> String? {
            let inventory = try await control.inventory()
            return inventory.devices.first(where: { $0.deviceId == id })?.status
        }
        let thumbprint = try await enrollment("pump-1")?.primaryThumbprint

        // Quarantine: the enrollment (written whole, the certificate kept) and the hub identity are disabled.
        _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: "pump-1", reason: "tamper", actor: "test")
        #expect(try await Self.settled(store, "pump-1"))
        #expect(try await enrollment("pump-1")?.provisioningStatus == "disabled")
        #expect(try await enrollment("pump-1")?.primaryThumbprint == thumbprint, "the certificate stays enrolled")
        #expect(try await hubStatus("pump-1") == "disabled")

        // Re-authorization enables both again.
        _ = try await h.kg.server.services.lifecycle.reauthorize(deviceID: "pump-1", actor: "test")
        #expect(try await Self.settled(store, "pump-1"))
        #expect(try await enrollment("pump-1")?.provisioningStatus == "enabled")
        #expect(try await hubStatus("pump-1") == "enabled")

        // Renewal over mTLS: the new certificate is primary, the old one secondary.
        let old = try await enrollment("pump-2")?.primaryThumbprint
        guard case .enrolled = try await enrollments["pump-2"]!.renew() else {
            Issue.record("pump-2 did not renew")
            return
        }
        #expect(try await Self.settled(store, "pump-2"))
        let renewed = try await enrollment("pump-2")
        #expect(renewed?.secondaryThumbprint == old && renewed?.primaryThumbprint != old)
        // A quarantine after the renewal keeps both certificates in the disabled enrollment.
        _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: "pump-2", reason: "audit", actor: "test")
        #expect(try await Self.settled(store, "pump-2"))
        let disabled = try await enrollment("pump-2")
        #expect(disabled?.provisioningStatus == "disabled")
        #expect(disabled?.primaryThumbprint == renewed?.primaryThumbprint)
        #expect(disabled?.secondaryThumbprint == old)

        // Retirement deletes the enrollment and the hub identity.
        _ = try await h.kg.server.services.lifecycle.retire(deviceID: "pump-3", reason: nil, actor: "test")
        #expect(try await Self.settled(store, "pump-3"))
        #expect(try await enrollment("pump-3") == nil)
        #expect(try await hubStatus("pump-3") == nil)

        let report = try await control.report()
        #expect(
            (report.refused[.dpsService] ?? 0) == 0 && (report.refused[.hub] ?? 0) == 0,
            "requests Azure would refuse: \(report.lastRefusals)")
        #expect(try await store.outboxItems(state: .deadLetter, deviceID: nil, limit: 10).isEmpty)
    }

    /// IoT Hub's registry allows about 100 operations a minute per S1 unit: quarantining many devices at
    /// once is paced per connector under that limit, and the sandbox's quota mode throttles nothing.
    @Test func quarantiningManyDevicesPacesHubCallsUnderTheRegistryThrottle() async throws {
        let folder = try TemporaryDirectory("hub-pace")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let devices = (1...6).map { "valve-\($0)" }
        let h = try await Harness.make(.init(), devices: devices)
        defer { Task { await h.stop() } }
        try await ConnectorFlowTests.connect(h, sandbox: sandbox.connection, hubCallsPerMinute: 100)
        let store = h.kg.store
        for device in devices {
            let enrollment = try h.enrollment(device, .ddk(attributes: DDKAttributes(strings: ["id": device]), seed: []))
            try await DeviceRunner(enrollment: enrollment, options: try AzureShapesTests.runnerOptions(sandbox.connection))
                .run()
        }
        // The registry's published limit, scaled down in time: 10 calls per 6 s is 100 a minute.
        let control = SandboxControlClient(connection: sandbox.connection)
        try await control.set(.init(quota: true, quotaLimit: 10, quotaWindowSeconds: 6), surface: .hub)
        let before = try await control.report()
        let started = ContinuousClock.now
        for device in devices {
            _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: device, reason: "recall", actor: "test")
        }
        for device in devices { #expect(try await Self.settled(store, device)) }
        let elapsed = ContinuousClock.now - started
        let after = try await control.report()
        let hubCalls = (after.passed[.hub] ?? 0) - (before.passed[.hub] ?? 0)
        #expect(hubCalls == 2 * devices.count, "a GET and a PUT per identity: \(hubCalls)")
        #expect(
            (after.injected[.hub] ?? 0) == (before.injected[.hub] ?? 0),
            "no hub call was throttled: \(after.injected[.hub] ?? 0)")
        // 12 calls at 100 a minute are at least 11 × 0.6 s apart.
        #expect(elapsed >= .milliseconds(6_400), "the calls were paced: \(elapsed)")
        let inventory = try await control.inventory()
        #expect(devices.allSatisfy { id in inventory.devices.first { $0.deviceId == id }?.status == "disabled" })
    }
}
