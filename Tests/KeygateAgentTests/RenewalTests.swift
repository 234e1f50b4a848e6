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
import Logging
import NIOSSL
import SwiftASN1
import Synchronization
import Testing
import X509

/// Renewal by policy with a running agent: a certificate of one minute, the agent renewing over
/// mTLS when the window opens, the DPS enrollment switching to the new certificate (the old one
/// secondary), and the hub connection carrying on with the new certificate.
@Suite(.tags(.slow), .fullRunOnly) struct RenewalTests {
    /// Telemetry as the runner reported it: when, which message, on which certificate.
    final class Telemetry: Sendable {
        struct Message: Sendable {
            var at: Date
            var sequence: Int
            var serial: String
        }
        private let messages = Mutex<[Message]>([])
        func add(_ sequence: Int, _ serial: String) {
            messages.withLock { $0.append(Message(at: Date(), sequence: sequence, serial: serial)) }
        }
        var all: [Message] { messages.withLock { $0 } }
    }

    /// The SHA-256 thumbprints of the DPS enrollment's primary and secondary certificates, as the
    /// sandbox lists them.
    static func enrollmentThumbprints(_ connection: SandboxServer.Connection, _ id: String) async throws -> (
        primary: String?, secondary: String?
    ) {
        let listed = try await SandboxControlClient(connection: connection).inventory().enrollments.first {
            $0.id == id
        }
        return (listed?.primaryThumbprint, listed?.secondaryThumbprint)
    }

    static func sha256Thumbprint(_ pem: String) throws -> String {
        let der = try Certificate(pemEncoded: pem).serializeAsPEM().derBytes
        return SHA256.hash(data: der).map { String(format: "%02X", $0) }.joined()
    }

    /// A device runner for `device` against the sandbox, started in a task; its telemetry and log.
    struct Running {
        let task: Task<Void, any Error>
        let telemetry: Telemetry
        let log: Log
        let enrollment: Enrollment

        var lines: [String] { log.lines.withLock { $0 } }
    }

    final class Log: Sendable {
        let lines = Mutex<[String]>([])
    }

    static func run(
        _ device: String, _ h: AgentEnrollmentTests.Harness, sandbox connection: SandboxServer.Connection,
        configure: (inout DeviceRunner.Options) -> Void
    ) throws -> Running {
        var options = DeviceRunner.Options()
        options.dpsHTTPSPort = try #require(URL(string: connection.baseURL)?.port)
        options.azureTrust = try NIOSSLCertificate.fromPEMFile(connection.caCertificate)
        options.mqttPort = try #require(connection.dps.mqttPort)
        configure(&options)
        let enrollment = try h.enrollment(
            device, .ddk(attributes: DDKAttributes(strings: ["machine-id": device]), seed: []))
        let telemetry = Telemetry()
        let log = Log()
        let runner = DeviceRunner(
            enrollment: enrollment, options: options, log: { line in log.lines.withLock { $0.append(line) } },
            onTelemetry: { telemetry.add($0, $1) })
        return Running(task: Task { try await runner.run() }, telemetry: telemetry, log: log, enrollment: enrollment)
    }

    @Test func aRunningAgentRenewsBeforeExpiryAndTheHubConnectionCarriesOnWithTheNewCertificate() async throws {
        let folder = try TemporaryDirectory("renewal")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let h = try await AgentEnrollmentTests.Harness.make(.init(validitySeconds: 60), devices: ["pump-1"])
        defer { Task { await h.stop() } }
        try await ConnectorFlowTests.connect(h, sandbox: sandbox.connection)
        let connection = sandbox.connection

        let running = try Self.run("pump-1", h, sandbox: connection) {
            $0.transport = .mqtt
            $0.telemetryInterval = .milliseconds(500)
            $0.renewalCheckInterval = .seconds(2)
        }
        let (task, telemetry) = (running.task, running.telemetry)
        defer { task.cancel() }

        // Wait (bounded) until messages flow on a second certificate.
        let deadline = ContinuousClock.now + .seconds(150)
        var serials: [String] = []
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            serials = telemetry.all.map(\.serial).reduce(into: []) { if $0.last != $1 { $0.append($1) } }
            if serials.count >= 2, telemetry.all.filter({ $0.serial == serials[1] }).count >= 6 { break }
        }
        task.cancel()
        _ = await task.result
        try #require(serials.count >= 2, "the agent renewed: \(running.lines)")
        let (old, new) = (serials[0], serials[1])

        // Renewed before expiry, over mTLS, with a new key.
        let store = h.kg.server.store
        let oldRecord = try #require(try await store.certificate(serial: old))
        let newRecord = try #require(try await store.certificate(serial: new))
        let switched = try #require(telemetry.all.first { $0.serial == new }?.at)
        #expect(switched < oldRecord.notAfter, "the switch happened before the old certificate expired")
        #expect(newRecord.createdAt > oldRecord.createdAt && newRecord.status == .active)
        #expect(
            try Certificate(pemEncoded: oldRecord.pem).publicKey != Certificate(pemEncoded: newRecord.pem).publicKey,
            "a new key")
        let events = try await store.auditEvents(subject: "pump-1", since: nil, limit: 50)
        #expect(events.contains { $0.action == "certificate.renewed" && $0.details["method"] == "mtls" })

        // The sandbox DPS enrollment: the new certificate primary, the old one secondary.
        let thumbprints = try await Self.enrollmentThumbprints(connection, "pump-1")
        #expect(thumbprints.primary == (try Self.sha256Thumbprint(newRecord.pem)))
        #expect(thumbprints.secondary == (try Self.sha256Thumbprint(oldRecord.pem)))

        // The hub carried every message. Renewing (asking Keygate, waiting for Azure, registering
        // with DPS) never held telemetry up; the one gap beyond the interval is the reconnect.
        let all = telemetry.all
        let switchIndex = try #require(all.firstIndex { $0.serial == new })
        let gaps = zip(all.dropFirst(), all).map { $0.at.timeIntervalSince($1.at) }
        let switchGap = gaps[switchIndex - 1]
        let otherGaps = gaps.enumerated().filter { $0.offset != switchIndex - 1 }.map(\.element)
        #expect((otherGaps.max() ?? 0) < 3, "telemetry kept its pace while renewing: \(otherGaps.max() ?? 0) s; \(running.lines)")
        #expect(switchGap < 8, "the switch took one reconnect: \(switchGap) s")
        #expect(Array(all.map(\.sequence)) == Array(0..<all.count), "no message lost or repeated")
        let inventory = try await SandboxControlClient(connection: connection).inventory()
        #expect(inventory.devices.first { $0.deviceId == "pump-1" }?.telemetryMessages ?? 0 >= all.count)
    }
}

extension RenewalTests {
    @Test func aRunningAgentIsCutOffByQuarantineAndComesBackWithANewCertificateAfterReauthorization() async throws {
        let folder = try TemporaryDirectory("quarantine-run")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let h = try await AgentEnrollmentTests.Harness.make(.init(), devices: ["valve-9"])
        defer { Task { await h.stop() } }
        try await ConnectorFlowTests.connect(h, sandbox: sandbox.connection)
        let connection = sandbox.connection
        let control = SandboxControlClient(connection: connection)

        let running = try Self.run("valve-9", h, sandbox: connection) {
            $0.transport = .https
            $0.telemetryInterval = .milliseconds(300)
            $0.quarantineCheckLimit = .seconds(1)
        }
        let (task, telemetry) = (running.task, running.telemetry)
        defer { task.cancel() }
        func waitFor(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                if try await condition() { return true }
                try await Task.sleep(for: .milliseconds(200))
            }
            return false
        }
        #expect(try await waitFor(60) { telemetry.all.count >= 3 }, "telemetry flows: \(running.lines)")
        let old = try #require(telemetry.all.first?.serial)

        // Quarantine: within seconds the hub identity and the DPS enrollment are disabled and the
        // live connection is cut; telemetry stops.
        let started = ContinuousClock.now
        _ = try await h.kg.server.services.lifecycle.quarantine(deviceID: "valve-9", reason: "tamper", actor: "admin:test")
        let cut = try await waitFor(20) {
            let inventory = try await control.inventory()
            let device = inventory.devices.first { $0.deviceId == "valve-9" }
            let dps = inventory.enrollments.first { $0.id == "valve-9" }
            return device?.connected == false && device?.status == "disabled" && dps?.provisioningStatus == "disabled"
        }
        #expect(cut, "the hub cut the device and DPS disabled it")
        #expect(ContinuousClock.now - started < .seconds(15), "within seconds")
        #expect(try await store(h).certificate(serial: old)?.status == .onHold)
        try await Task.sleep(for: .seconds(2))
        let countWhileQuarantined = telemetry.all.count
        try await Task.sleep(for: .seconds(2))
        #expect(telemetry.all.count == countWhileQuarantined, "no telemetry while quarantined")

        // Re-authorization: the running agent enrolls again and comes back with a new certificate.
        _ = try await h.kg.server.services.lifecycle.reauthorize(deviceID: "valve-9", actor: "admin:test")
        #expect(
            try await waitFor(60) { telemetry.all.contains { $0.serial != old } },
            "back with a new certificate: \(running.lines)")
        task.cancel()
        _ = await task.result
        let new = try #require(telemetry.all.last?.serial)
        #expect(new != old)
        let actions = try await store(h).auditEvents(subject: "valve-9", since: nil, limit: 50).map(\.action)
        #expect(actions.contains("device.quarantined") && actions.contains("device.reauthorized"), "\(actions)")
        let inventory = try await control.inventory()
        #expect(inventory.devices.first { $0.deviceId == "valve-9" }?.status == "enabled")
    }

    private func store(_ h: AgentEnrollmentTests.Harness) -> any ServerStore { h.kg.server.store }
}

extension RenewalTests {
    /// IoT Central likewise: a renewal puts the new certificate as the device's primary and keeps the
    /// old one as its secondary (the sandbox keeps Central's device credentials in its DPS state).
    @Test func aRenewalThroughIoTCentralKeepsTheOldCertificateAsSecondary() async throws {
        let folder = try TemporaryDirectory("central-renewal")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let connection = sandbox.connection
        let h = try await AgentEnrollmentTests.Harness.make(.init(), devices: ["hvac-1"])
        defer { Task { await h.stop() } }
        let store = h.kg.server.store
        let secrets = h.kg.secrets
        try await store.addConnector(
            Connector(
                name: "central", kind: .iotCentral,
                settings: .init(
                    endpoint: connection.central.appURL, globalEndpoint: connection.dps.deviceEndpoint,
                    caCertificate: connection.caCertificate),
                sealedSecrets: ["apiToken": try secrets.seal(connection.central.apiToken)]),
            audit: .init(actor: "test", action: "connector.added", subject: "central"))
        var group = try #require(try await store.group(named: "fleet"))
        group.policy.connector = "central"
        try await store.updateGroup(group, audit: .init(actor: "test", action: "group.updated", subject: "fleet"))

        let enrollment = try h.enrollment(
            "hvac-1", .ddk(attributes: DDKAttributes(strings: ["machine-id": "h1"]), seed: []))
        guard case .enrolled(let old, _) = try await enrollment.run() else { return }
        #expect(try await ConnectorFlowTests.waitConfirmed(store, ["hvac-1"]))
        guard case .enrolled(let new, _) = try await enrollment.renew() else { return }
        #expect(try await ConnectorFlowTests.waitConfirmed(store, ["hvac-1"]))

        let newPEM = try #require(try await store.certificate(serial: new)?.pem)
        let oldPEM = try #require(try await store.certificate(serial: old)?.pem)
        let thumbprints = try await Self.enrollmentThumbprints(connection, "hvac-1")
        #expect(thumbprints.primary == (try Self.sha256Thumbprint(newPEM)))
        #expect(thumbprints.secondary == (try Self.sha256Thumbprint(oldPEM)))
        let items = try await store.outboxItems(state: .delivered, deviceID: "hvac-1", limit: 10)
        #expect(items.contains { $0.action == .enroll && $0.previousCertificate == oldPEM && $0.certificate == newPEM })
    }
}
