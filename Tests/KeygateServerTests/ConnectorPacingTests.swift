import Foundation
import KeygateAzure
import KeygateDomain
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Logging
import Testing

/// A connector paces its calls under the service's allowance: with the sandbox enforcing a quota, a
/// paced connector gets no 429 where an unpaced one is throttled; nodes split the allowance.
@Suite(.serialized) struct ConnectorPacingTests {
    @Test func theAllowanceIsSplitOverTheLiveNodes() async {
        let pacer = CallPacer(perMinute: 600, shares: { 3 })
        // 600 a minute over three nodes is 200 each, paced at 95 %: one call every 60 / 190 s.
        let interval = await pacer.interval
        #expect(abs(Double(interval.components.attoseconds) / 1e18 - 60.0 / 190.0) < 1e-6)
        #expect(interval.components.seconds == 0)
        let alone = await CallPacer(perMinute: 600).interval
        #expect(abs(Double(alone.components.attoseconds) / 1e18 - 60.0 / 570.0) < 1e-6)
    }

    func deliver(maxCallsPerMinute: Int) async throws -> (throttled: Int, passed: Int) {
        let folder = try TemporaryDirectory("pacing")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let control = SandboxControlClient(connection: sandbox.connection)
        // Six DPS calls per 3-s window: 120 a minute.
        try await control.set(.init(quota: true, quotaLimit: 6, quotaWindowSeconds: 3), surface: .dpsService)
        let kg = try await TestKeygate.make()
        var request = ConnectorRequest(name: "dps", type: "dps")
        request.connectionString = sandbox.connection.dps.serviceConnectionString
        request.idScope = sandbox.connection.dps.idScope
        request.caCertificate = sandbox.connection.caCertificate
        request.maxCallsPerMinute = maxCallsPerMinute
        _ = try await kg.server.services.connectors.add(request, actor: "test")
        let pem = try await kg.server.services.certificates.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "paced"),
            actor: "test"
        ).record.pem
        // 120 enrollments: twelve bulk operations of ten.
        for index in 0..<120 {
            try await kg.store.enqueue(
                OutboxItem(connector: "dps", deviceID: "paced-\(index)", action: .enroll, certificate: pem), audit: nil)
        }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var policy = OutboxDispatcher.Policy()
        policy.batch = 200
        let dispatcher = OutboxDispatcher(store: kg.store, secrets: kg.secrets, policy: policy, logger: logger)
        let deadline = Date() + 60
        while (try await kg.store.outboxCounts()[.delivered] ?? 0) < 120, Date() < deadline {
            if try await dispatcher.deliverDue(now: Date() + 3600) == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(try await kg.store.outboxCounts()[.delivered] == 120)
        let report = try await control.report()
        return (report.injected[.dpsService] ?? 0, report.passed[.dpsService] ?? 0)
    }

    @Test(.tags(.slow), .fullRunOnly) func aPacedConnectorStaysUnderTheQuotaWhereAnUnpacedOneIsThrottled() async throws {
        // Paced a little under the quota (100 a minute against 120): the margin absorbs the first call's
        // TLS handshake, which makes the sandbox's window start late.
        let paced = try await deliver(maxCallsPerMinute: 100)
        #expect(paced.throttled == 0, "paced under the allowance: no 429 (\(paced))")
        #expect(paced.passed >= 12)
        let unpaced = try await deliver(maxCallsPerMinute: 100_000)
        #expect(unpaced.throttled > 0, "the same work unpaced runs into the quota (\(unpaced))")
    }

    @Test func aConnectorsPaceIsChangedAuditedAndReset() async throws {
        let kg = try await TestKeygate.make()
        var request = ConnectorRequest(name: "dps", type: "dps")
        request.connectionString = "HostName=dps.example;SharedAccessKeyName=owner;SharedAccessKey=AAAA"
        request.idScope = "0ne00000001"
        let added = try await kg.server.services.connectors.add(request, actor: "test")
        #expect(ConnectorBody(added).callsPerMinute == DPSServiceClient.publishedOperationsPerMinute)
        let service = kg.server.services.connectors
        let changed = try await service.update(named: "dps", .init(maxCallsPerMinute: 400), actor: "ops")
        #expect(changed.settings.maxCallsPerMinute == 400 && ConnectorBody(changed).callsPerMinute == 400)
        #expect(try await kg.store.connector(named: "dps")?.settings.maxCallsPerMinute == 400)
        let event = try #require(try await kg.store.auditEvents(subject: "dps", since: nil, limit: 10).last)
        #expect(event.action == "connector.updated" && event.actor == "ops")
        #expect(event.details["maxCallsPerMinute"] == "default -> 400", "\(event.details)")
        #expect(await errorCode { _ = try await service.update(named: "dps", .init(maxCallsPerMinute: -1), actor: "ops") } == "invalidConnector")
        #expect(await errorCode { _ = try await service.update(named: "dps", .init(hubCallsPerMinute: 10), actor: "ops") } == "invalidConnector")
        #expect(await errorCode { _ = try await service.update(named: "nope", .init(maxCallsPerMinute: 10), actor: "ops") } == "connectorNotFound")
        let reset = try await service.update(named: "dps", .init(maxCallsPerMinute: 0), actor: "ops")
        #expect(reset.settings.maxCallsPerMinute == nil)
    }
}
