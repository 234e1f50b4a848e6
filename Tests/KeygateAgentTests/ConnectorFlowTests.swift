import AsyncHTTPClient
import Crypto
import Foundation
import KeygateAgent
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import KeygateTestSupport
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
import X509

/// Steps 1 to 9 against the sandbox: a DPS connector, the outbox delivering each enrolled device's
/// individual enrollment (through faults and an outage), then the device registering with DPS and
/// sending telemetry to the hub with the certificate Keygate issued.
@Suite(.tags(.slow), .fullRunOnly) struct ConnectorFlowTests {
    /// Adds a DPS connector through the admin API and a group that uses it.
    static func connect(
        _ h: AgentEnrollmentTests.Harness, sandbox: SandboxServer.Connection, hubCallsPerMinute: Int? = nil
    ) async throws {
        var request = HTTPClientRequest(url: h.server.httpsURL + "/admin/v1/connectors")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(h.kg.adminToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        var fields: [String: Any] = [
            "name": "sandbox-dps", "type": "dps", "connectionString": sandbox.dps.serviceConnectionString,
            "idScope": sandbox.dps.idScope, "globalEndpoint": sandbox.dps.deviceEndpoint,
            "hubConnectionString": sandbox.hub.registryConnectionString, "caCertificate": sandbox.caCertificate,
        ]
        if let hubCallsPerMinute { fields["hubCallsPerMinute"] = hubCallsPerMinute }
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: fields)))
        let response = try await h.http.execute(request, timeout: .seconds(10))
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        #expect(response.status == .created, "\(body)")
        #expect(!body.contains("SharedAccessKey="), "secrets are never shown")
        var group = try #require(try await h.kg.server.store.group(named: "fleet"))
        group.policy.connector = "sandbox-dps"
        group.policy.firstContact = "open"
        try await h.kg.server.store.updateGroup(
            group, audit: .init(actor: "test", action: "group.updated", subject: "fleet"))
    }

    /// Waits (bounded) until every device's enrollment reached Azure.
    static func waitConfirmed(_ store: any ServerStore, _ devices: [String], seconds: Double = 60) async throws -> Bool
    {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            var all = true
            for device in devices where try await store.enrollmentConfirmed(deviceID: device) != true { all = false }
            if all { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    @Test func enrolledDevicesReachDPSThroughTheOutboxEvenWhenAzureFailsThenRegisterAndConnect() async throws {
        let folder = try TemporaryDirectory("connector-flow")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let devices = (0..<12).map { "meter-\($0)" }
        let h = try await AgentEnrollmentTests.Harness.make(.init(), devices: devices)
        defer { Task { await h.stop() } }
        try await Self.connect(h, sandbox: sandbox.connection)
        let store = h.kg.server.store
        let control = SandboxControlClient(connection: sandbox.connection)

        // Every DPS service call fails (429, 500, 503, drops; timeouts are the next test's outage) until
        // some were refused, then 30 % do: enrollments travel ten per bulk call, so with a rate alone a
        // run could pass without meeting a fault.
        let faults: [FaultKind] = [.throttle, .serverError, .unavailable, .drop]
        try await control.set(.init(rate: 1, kinds: faults, retryAfterSeconds: 1), surface: .dpsService)
        var identities: [String: DDKIdentity] = [:]
        for device in devices.prefix(8) {
            let attributes = DDKAttributes(strings: ["machine-id": device])
            identities[device] = DDKIdentity(deviceID: device, attributes: attributes)
            let outcome = try await h.enrollment(device, .ddk(attributes: attributes, seed: [])).run()
            guard case .enrolled = outcome else { Issue.record("\(device) not enrolled: \(outcome)"); return }
        }
        for _ in 0..<100 where (try await control.report().injected[.dpsService] ?? 0) == 0 {
            try await Task.sleep(for: .milliseconds(100))
        }
        try await control.set(.init(rate: 0.3, kinds: faults, retryAfterSeconds: 1), surface: .dpsService)
        #expect(try await Self.waitConfirmed(store, Array(devices.prefix(8))), "every enrollment reaches DPS")
        let report = try await control.report()
        #expect((report.injected[.dpsService] ?? 0) > 0, "faults were injected: \(report.injected)")
        #expect(try await store.outboxItems(state: .deadLetter, deviceID: nil, limit: 10).isEmpty)
        try await control.set(.init(rate: 0), surface: .dpsService)

        // DPS "down": enrollments queue with the error; "up": they all go through.
        try await control.set(.init(down: true), surface: .dpsService)
        for device in devices.suffix(4) {
            let attributes = DDKAttributes(strings: ["machine-id": device])
            identities[device] = DDKIdentity(deviceID: device, attributes: attributes)
            _ = try await h.enrollment(device, .ddk(attributes: attributes, seed: [])).run()
        }
        var queued: [OutboxItem] = []
        let deadline = ContinuousClock.now + .seconds(30)
        repeat {
            try await Task.sleep(for: .milliseconds(250))
            queued = try await store.outboxItems(state: .pending, deviceID: nil, limit: 10)
        } while ContinuousClock.now < deadline && !queued.allSatisfy { $0.lastError != nil }
        #expect(
            queued.count == 4 && queued.allSatisfy { $0.lastError?.contains("azureUnavailable") == true }, "\(queued)")
        #expect(try await store.enrollmentConfirmed(deviceID: devices[11]) == false)
        try await control.set(.init(down: false), surface: .dpsService)
        #expect(try await Self.waitConfirmed(store, devices), "after the outage every enrollment goes through")

        // Exactly one enrollment per device in DPS, each with the certificate Keygate holds.
        let inventory = try await control.inventory()
        #expect(inventory.enrollments.filter { $0.kind == "individual" }.map(\.id).sorted() == devices.sorted())

        // Steps 7-9: the first device registers with DPS over MQTT and sends telemetry to the hub.
        let device = devices[0]
        let chainPEM = try String(
            contentsOfFile: h.folder.file("state-\(device)") + "/device.crt.pem", encoding: .utf8)
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8))
        let key = identities[device]!.tlsKey(generation: 0)
        let identity = AzureDeviceIdentity(
            certificateChain: chain,
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem),
            trustRoots: try NIOSSLCertificate.fromPEMFile(sandbox.connection.caCertificate))
        let port = try #require(sandbox.connection.dps.mqttPort)
        let assignment = try await DPSMQTTRegistration.register(
            endpoint: sandbox.connection.dps.deviceEndpoint, port: port, idScope: sandbox.connection.dps.idScope,
            registrationID: device, identity: identity)
        #expect(assignment.deviceId == device)
        let hub = try await IoTHubDeviceConnection.connect(
            hub: assignment.assignedHub, port: port, deviceID: device, identity: identity)
        try await hub.send(Array("{\"kWh\": 12.5}".utf8))
        await hub.close()
        #expect(try await control.inventory().devices.first { $0.deviceId == device }?.telemetryMessages == 1)
    }

    @Test func theAgentRunsStepsFourToNineOverHTTPSOrMQTTAndCarriesOnAfterARestart() async throws {
        let folder = try TemporaryDirectory("agent-run")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let h = try await AgentEnrollmentTests.Harness.make(.init(), devices: ["boiler-9", "boiler-10"])
        defer { Task { await h.stop() } }
        try await Self.connect(h, sandbox: sandbox.connection)
        let agent = try KeygateBinary.locate("keygate-agent")
        let connection = sandbox.connection
        let httpsPort = try #require(URL(string: connection.baseURL)?.port)
        let mqttPort = try #require(connection.dps.mqttPort)
        func run(_ device: String, transport: String, messages: Int) async throws -> ExternalTool.Output {
            try await agent.run([
                "run", "--server", h.server.httpsURL, "--ca-cert", h.kg.rootPath, "--device-id", device, "--state-dir",
                folder.file("state-\(device)"), "--attribute", "machine-id=\(device)", "--azure-ca-cert",
                connection.caCertificate, "--dps-transport", transport, "--dps-port", "\(httpsPort)", "--mqtt-port",
                "\(mqttPort)", "--interval", "0.1", "--messages", "\(messages)",
            ])
        }
        let first = try await run("boiler-9", transport: "https", messages: 3)
        #expect(first.status == 0, "\(first.combined)")
        for step in DeviceRunner.Step.allCases {
            #expect(first.stdout.contains(step.rawValue), "timeline shows \(step): \(first.stdout)")
        }
        let certificates = try await h.kg.server.store.certificates(
            matching: .init(status: nil, deviceID: "boiler-9", limit: 10))
        #expect(certificates.count == 1)

        // A restart carries on: no new certificate, no new enrollment, more telemetry.
        let again = try await run("boiler-9", transport: "https", messages: 2)
        #expect(again.status == 0, "\(again.combined)")
        #expect(
            try await h.kg.server.store.certificates(
                matching: .init(status: nil, deviceID: "boiler-9", limit: 10)
            )
            .count == 1)
        #expect(
            try await h.kg.server.store.outboxItems(state: nil, deviceID: "boiler-9", limit: 10).count == 1)

        let overMQTT = try await run("boiler-10", transport: "mqtt", messages: 2)
        #expect(overMQTT.status == 0, "\(overMQTT.combined)")
        let inventory = try await SandboxControlClient(connection: connection).inventory()
        #expect(inventory.devices.first { $0.deviceId == "boiler-9" }?.telemetryMessages == 5)
        #expect(inventory.devices.first { $0.deviceId == "boiler-10" }?.telemetryMessages == 2)
    }

    @Test func theFleetSimulatorRunsManyDevicesThroughTheWholeFlow() async throws {
        let folder = try TemporaryDirectory("simulate")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let ids = (0..<20).map { String(format: "sim-%04d", $0) }
        let h = try await AgentEnrollmentTests.Harness.make(.init(), devices: ids)
        defer { Task { await h.stop() } }
        try await Self.connect(h, sandbox: sandbox.connection)
        let connection = sandbox.connection
        let run = try await ExternalTool(path: try KeygateBinary.locate("keygate-agent").path).run(
            [
                "simulate", "--server", h.server.httpsURL, "--ca-cert", h.kg.rootPath, "--devices", "20", "--prefix",
                "sim", "--concurrency", "10", "--state-dir", folder.file("fleet"), "--azure-ca-cert",
                connection.caCertificate, "--dps-port", "\(try #require(URL(string: connection.baseURL)?.port))",
                "--mqtt-port", "\(try #require(connection.dps.mqttPort))", "--messages", "2", "--dps-transport", "mqtt",
            ], timeout: 300)
        #expect(run.status == 0, "\(run.combined)")
        #expect(run.stdout.contains("20/20") && run.stdout.contains("0 failed"), "\(run.stdout)")
        let inventory = try await SandboxControlClient(connection: connection).inventory()
        #expect(inventory.devices.filter { $0.deviceId.hasPrefix("sim-") && $0.telemetryMessages == 2 }.count == 20)
    }
}
