import Foundation
import KeygateDomain
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Logging
import Testing

/// The dispatcher's dead letters: after the bounded number of attempts an item stops, keeps its last
/// error, and `retry` puts it back; delivered once Azure is back.
@Suite struct OutboxDispatcherTests {
    /// A DPS connector named `dps` for the sandbox's DPS (no hub).
    static func addDPSConnector(_ kg: TestKeygate, _ sandbox: TestSandbox) async throws {
        try await kg.store.addConnector(
            Connector(
                name: "dps", kind: .dps,
                settings: .init(
                    endpoint: "sandbox", idScope: sandbox.connection.dps.idScope,
                    caCertificate: sandbox.connection.caCertificate),
                sealedSecrets: [
                    "connectionString": try kg.secrets.seal(sandbox.connection.dps.serviceConnectionString)
                ]),
            audit: .init(actor: "test", action: "connector.added", subject: "dps"))
    }

    @Test func anItemDeadLettersAfterItsAttemptsAndARetryDeliversIt() async throws {
        let folder = try TemporaryDirectory("dead-letter")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let kg = try await TestKeygate.make()
        let store = kg.server.store
        let secrets = kg.secrets
        try await Self.addDPSConnector(kg, sandbox)
        let pem = try await TestPKI.make().root.certificate.pemString
        try await store.enqueue(
            OutboxItem(connector: "dps", deviceID: "late-1", action: .enroll, certificate: pem), audit: nil)

        var policy = OutboxDispatcher.Policy()
        policy.maximumAttempts = 2
        policy.baseDelay = 0
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let dispatcher = OutboxDispatcher(store: store, secrets: secrets, policy: policy, logger: logger)
        let control = SandboxControlClient(connection: sandbox.connection)
        try await control.set(.init(down: true, retryAfterSeconds: 0), surface: .dpsService)
        for _ in 0..<2 { try await dispatcher.deliverDue(now: Date() + 3600) }
        let dead = try await store.outboxItems(state: .deadLetter, deviceID: "late-1", limit: 10)
        #expect(dead.count == 1 && dead.first?.attempts == 2, "\(dead)")
        #expect(dead.first?.lastError?.contains("azureUnavailable") == true)
        #expect(try await dispatcher.deliverDue(now: Date() + 7200) == 0, "a dead letter is not retried by itself")
        let audit = try await store.auditEvents(subject: "late-1", since: nil, limit: 10).map(\.action)
        #expect(audit.contains("outbox.deadLetter"))

        try await control.set(.init(down: false), surface: .dpsService)
        let retried = try await store.retryOutboxItem(
            id: try #require(dead.first?.id), audit: .init(actor: "test", action: "outbox.retried", subject: "late-1"))
        #expect(retried.state == .pending && retried.attempts == 0)
        try await dispatcher.deliverDue()
        #expect(try await store.enrollmentConfirmed(deviceID: "late-1") == true)
        #expect(try await control.inventory().enrollments.contains { $0.id == "late-1" })
    }

    /// A node that died after DPS took its write but before it recorded the delivery leaves the item
    /// leased; the node that takes it over when the lease runs out looks first and does not write again.
    @Test(.tags(.outsideTool)) func aResumedItemThatReachedAzureIsNotWrittenAgain() async throws {
        guard ExternalTool.available("sqlite3") else { return }
        let folder = try TemporaryDirectory("resumed")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let kg = try await TestKeygate.make()
        let store = kg.server.store
        try await Self.addDPSConnector(kg, sandbox)
        let issued = try await kg.server.services.certificates.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "resumed-1"),
            actor: "test")
        try await store.enqueue(
            OutboxItem(connector: "dps", deviceID: "resumed-1", action: .enroll, certificate: issued.record.pem),
            audit: nil)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let first = OutboxDispatcher(store: store, secrets: kg.secrets, logger: logger, node: "first")
        #expect(try await first.deliverDue() == 1)
        let control = SandboxControlClient(connection: sandbox.connection)
        #expect(try await control.inventory().enrollments.first { $0.id == "resumed-1" }?.writes == 1)
        // As if `first` had died before recording the delivery: still pending, its lease run out.
        let database = kg.directory.path(kg.server.configuration.database)
        let edit = try await ExternalTool.require("sqlite3").run([
            database,
            "UPDATE outbox SET state = 'pending', leased_by = 'first', leased_until = 1 WHERE device_id = 'resumed-1'",
        ])
        #expect(edit.status == 0, "\(edit.combined)")
        let second = OutboxDispatcher(store: store, secrets: kg.secrets, logger: logger, node: "second")
        #expect(try await second.deliverDue() == 1)
        #expect(try await store.enrollmentConfirmed(deviceID: "resumed-1") == true)
        #expect(
            try await control.inventory().enrollments.first { $0.id == "resumed-1" }?.writes == 1,
            "DPS already held it: not written again")
        // An item resumed whose write never reached DPS is written.
        try await store.enqueue(
            OutboxItem(connector: "dps", deviceID: "resumed-2", action: .enroll, certificate: issued.record.pem),
            audit: nil)
        _ = try await store.claimOutboxItems(now: Date(), limit: 10, node: "first", leaseFor: 0.2)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await second.deliverDue() == 1)
        #expect(try await control.inventory().enrollments.first { $0.id == "resumed-2" }?.writes == 1)
    }

    /// A 4xx that will not change by itself (here: DPS refuses an enrollment whose certificate is not
    /// one) is dead-lettered at the first attempt, with Azure's error code and message, and counted;
    /// a retry after the cause is fixed delivers it.
    @Test func aPermanentRefusalIsDeadLetteredAtOnceWithAzuresWords() async throws {
        let folder = try TemporaryDirectory("permanent")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let kg = try await TestKeygate.make()
        let store = kg.server.store
        try await Self.addDPSConnector(kg, sandbox)
        try await store.enqueue(
            OutboxItem(connector: "dps", deviceID: "odd-1", action: .enroll, certificate: "not a certificate"),
            audit: nil)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let metrics = KeygateMetrics()
        let dispatcher = OutboxDispatcher(store: store, secrets: kg.secrets, logger: logger, metrics: metrics)
        try await dispatcher.deliverDue()
        let dead = try #require(try await store.outboxItems(state: .deadLetter, deviceID: "odd-1", limit: 10).first)
        #expect(dead.attempts == 1, "not retried: \(dead)")
        let error = dead.lastError ?? ""
        #expect(error.contains("azureRefused") && error.contains("HTTP 400") && error.contains("errorCode 400"), "\(error)")
        #expect(error.contains("is not a certificate"), "Azure's message is kept: \(error)")
        #expect(metrics.render().contains("keygate_outbox_dead_letters_total{code=\"azureRefused\",connector=\"dps\"} 1")
            || metrics.render().contains("keygate_outbox_dead_letters_total{connector=\"dps\",code=\"azureRefused\"} 1"),
            "\(metrics.render())")
        #expect(try await dispatcher.deliverDue(now: Date() + 7200) == 0, "a dead letter waits for the operator")

        // Once the cause is fixed (here: a real certificate), the device's next change is delivered.
        let pem = try await TestPKI.make().root.certificate.pemString
        try await store.enqueue(
            OutboxItem(connector: "dps", deviceID: "odd-1", action: .enroll, certificate: pem), audit: nil)
        try await dispatcher.deliverDue()
        #expect(try await store.enrollmentConfirmed(deviceID: "odd-1") == true)
        #expect(try await SandboxControlClient(connection: sandbox.connection).report().refused[.dpsService] == 1)
    }

    @Test func anIoTCentralConnectorWithAADClientCredentialsEnrollsADevice() async throws {
        let folder = try TemporaryDirectory("central-aad")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let kg = try await TestKeygate.make()
        let secrets = kg.secrets
        let kv = sandbox.connection.keyVault
        let connector = Connector(
            name: "central", kind: .iotCentral,
            settings: .init(
                endpoint: sandbox.connection.central.appURL, caCertificate: sandbox.connection.caCertificate,
                tokenEndpoint: kv.tokenEndpoint, clientID: kv.clientId),
            sealedSecrets: ["clientSecret": try secrets.seal(kv.clientSecret)])
        let client = try ConnectorClient(connector, secrets: secrets)
        #expect(try await client.test().contains("answered"))
        let pem = try await TestPKI.make().root.certificate.pemString
        let scope = try await client.deliver(
            OutboxItem(connector: "central", deviceID: "aad-1", action: .enroll, certificate: pem))
        #expect(scope == sandbox.connection.dps.idScope, "the ID scope comes from the device's credentials")
        #expect(
            try await SandboxControlClient(connection: sandbox.connection).inventory().enrollments.contains {
                $0.id == "aad-1" && $0.provisioningStatus == "enabled"
            })
        // A wrong secret is refused as unauthorized, not retried forever as an outage.
        let wrong = Connector(
            name: "central", kind: .iotCentral, settings: connector.settings,
            sealedSecrets: ["clientSecret": try secrets.seal("not-the-secret")])
        let code = await errorCode { _ = try await ConnectorClient(wrong, secrets: secrets).test() }
        #expect(code == "azureUnauthorized", "\(code)")
    }
}
