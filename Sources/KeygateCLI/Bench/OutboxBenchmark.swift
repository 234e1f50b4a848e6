import ArgumentParser
import Crypto
import Foundation
import KeygateAzure
import KeygateDomain
import KeygateHTTP
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import Logging
import SwiftASN1
import X509

/// The outbox against DPS's throttle: N enrollments queued at once, delivered in bulk operations by a
/// paced connector to the sandbox with its quotas on. Reports enrollments a minute, DPS calls a minute
/// against the allowance, and the calls answered 429.
struct OutboxBenchmark {
    let items: Int
    let limit: Int?
    let database: String?

    struct Result: Codable {
        var items: Int
        var seconds: Double
        var enrollmentsPerMinute: Double
        var calls: Int
        var throttled: Int
        var callsPerMinute: Double
        var allowancePerMinute: Int
        var cores: Int

        var summary: String {
            String(
                format:
                    "%d enrollments in %.1f s = %.0f enrollments/min; %d DPS calls = %.0f/min = %.1f %% of the %d-a-minute allowance; %d answered 429 (%.2f %%); %d cores",
                items, seconds, enrollmentsPerMinute, calls, callsPerMinute,
                100 * callsPerMinute / Double(allowancePerMinute), allowancePerMinute, throttled,
                100 * Double(throttled) / Double(max(1, calls)), cores)
        }
    }

    func run(progress: @escaping @Sendable (Int) -> Void) async throws -> Result {
        let folder = NSTemporaryDirectory() + "keygate-bench-outbox-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var logger = Logger(label: "keygate-bench")
        logger.logLevel = .critical

        var sandboxOptions = SandboxServer.Options(dataDirectory: folder + "/sandbox")
        sandboxOptions.httpsPort = 0
        sandboxOptions.mqttPort = 0
        // In memory: rewriting the sandbox's state file per change would be the bottleneck measured.
        sandboxOptions.persistState = false
        let sandbox = try await BackgroundServer.start(SandboxServer(options: sandboxOptions, logger: logger).run)
        defer { sandbox.cancel() }
        let azure = sandbox.ready
        let control = SandboxControlClient(connection: azure)
        try await control.set(.init(quota: true), surface: .dpsService)
        if let limit { try await control.set(.init(quota: true, quotaLimit: limit), surface: .dpsService) }

        var options = KeygateInitializer.Options()
        options.httpsPort = 0
        options.httpPort = 0
        options.passphrase = "benchmark-passphrase"
        options.database = database
        let directory = DataDirectory(path: folder + "/data")
        _ = try await KeygateInitializer(directory: directory, options: options).run()
        let server = try await KeygateServer.load(directory: directory, passphrase: options.passphrase, logger: logger)
        var request = ConnectorRequest(name: "dps", type: "dps")
        request.connectionString = azure.dps.serviceConnectionString
        request.idScope = azure.dps.idScope
        request.globalEndpoint = azure.dps.deviceEndpoint
        request.caCertificate = azure.caCertificate
        request.maxCallsPerMinute = limit
        let connector = try await server.services.connectors.add(request, actor: "bench")
        let allowance = connector.settings.maxCallsPerMinute ?? DPSServiceClient.publishedOperationsPerMinute

        // One real device certificate, enrolled under N registration IDs.
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("bench") },
            privateKey: .init(key), attributes: .init())
        let pem = try await server.services.certificates.issue(
            csr: Array(try csr.serializeAsPEM().pemString.utf8), profile: .device,
            identity: .init(commonName: "bench"), actor: "bench"
        ).record.pem
        for index in 0..<items {
            try await server.store.enqueue(
                OutboxItem(
                    connector: "dps", deviceID: String(format: "bench-%06d", index), action: .enroll,
                    certificate: pem),
                audit: nil)
        }

        let dispatcher = OutboxDispatcher(
            store: server.store, secrets: SecretBox(passphrase: options.passphrase!), logger: logger)
        let start = ContinuousClock.now
        let delivering = Task { while !Task.isCancelled { if try await dispatcher.deliverDue() == 0 { try await Task.sleep(for: .milliseconds(50)) } } }
        defer { delivering.cancel() }
        while true {
            let delivered = try await server.store.outboxCounts()[.delivered] ?? 0
            progress(delivered)
            if delivered >= items { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        let elapsed = ContinuousClock.now - start
        delivering.cancel()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let report = try await control.report()
        let passed = report.passed[.dpsService] ?? 0
        let throttled = report.injected[.dpsService] ?? 0
        return Result(
            items: items, seconds: seconds, enrollmentsPerMinute: Double(items) / seconds * 60, calls: passed + throttled,
            throttled: throttled, callsPerMinute: Double(passed) / seconds * 60, allowancePerMinute: allowance,
            cores: ProcessInfo.processInfo.activeProcessorCount)
    }
}

extension BenchCommand {
    struct Outbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "DPS enrollments a minute through a paced connector, under the sandbox's quotas.",
            discussion: """
                Queues --items enrollments at once and delivers them (bulk operations of ten) to an in-process
                sandbox (state in memory) whose DPS enforces its quota (1000 service operations a minute, or
                --limit). Prints
                enrollments a minute, DPS calls a minute against the allowance, and the calls answered 429.
                """)
        @Option(help: "Enrollments to deliver.") var items: Int = 12_000
        @Option(help: "DPS calls a minute, for the sandbox's quota and the connector (default: DPS's 1000).")
        var limit: Int?
        @Option(help: "An empty PostgreSQL database instead of SQLite.") var database: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func validate() throws {
            guard (10...1_000_000).contains(items) else { throw ValidationError("--items must be 10 to 1,000,000") }
            if let limit, !(1...100_000).contains(limit) { throw ValidationError("--limit must be 1 to 100000") }
        }

        func run() async throws {
            let bar = ProgressBar(total: items, label: "delivered")
            let result = try await runReportingErrors {
                try await OutboxBenchmark(items: items, limit: limit, database: database).run { bar.update($0) }
            }
            bar.finish()
            if json { return try printJSON(result) }
            print(result.summary)
        }
    }
}
