import AsyncHTTPClient
import Foundation
import KeygateHTTP
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import X509

/// Dashboard page latency with a large fleet: a temporary server whose database holds `devices`
/// devices (1 % quarantined by an operator, the rest allowlisted or enrolled) and `certificates`
/// certificate records with their audit events (a third of them renewals, expiry spread over a
/// year); then every page is requested `requests` times, one at a time, signed in like a browser.
struct DashboardBenchmark {
    let devices: Int
    let certificates: Int
    let requests: Int
    var database: String? = nil

    struct Page: Codable {
        var path: String
        var p50Milliseconds: Double
        var p95Milliseconds: Double
        var maxMilliseconds: Double
        var bytes: Int
    }

    struct Result: Codable {
        var devices: Int
        var certificates: Int
        var auditEvents: Int64
        var backend: String
        var seedSeconds: Double
        var pages: [Page]
        var cores: Int

        var summary: String {
            var lines = [
                "\(devices) devices, \(certificates) certificates, \(auditEvents) audit events on \(backend) (seeded in \(Int(seedSeconds)) s); \(cores) cores",
                "page                                         p50 ms   p95 ms   max ms    bytes",
            ]
            for page in pages {
                lines.append(
                    page.path.padding(toLength: 44, withPad: " ", startingAt: 0)
                        + String(
                            format: " %7.1f  %7.1f  %7.1f  %7d", page.p50Milliseconds, page.p95Milliseconds,
                            page.maxMilliseconds, page.bytes))
            }
            let slowest = pages.map(\.p95Milliseconds).max() ?? 0
            lines.append(String(format: "slowest p95: %.1f ms (target: under 200 ms)", slowest))
            return lines.joined(separator: "\n")
        }
    }

    func run(log: @escaping @Sendable (String) -> Void) async throws -> Result {
        let node = try await BenchServer.start("dashboard", database: database)
        defer { node.stop() }
        let server = node.server
        let services = server.services
        let running = node.running
        let initialized = node.initialized

        let clock = ContinuousClock()
        let seedStart = clock.now
        log("seeding \(devices) devices")
        var group = GroupRequest(name: "fleet")
        group.firstContact = "open"
        _ = try await services.fleet.createGroup(group, actor: "admin:bench")
        let ids = (0..<devices).map { String(format: "bench-%06d", $0) }
        let importing = ProgressBar(total: devices, label: "allowlisted")
        var done = 0
        for start in stride(from: 0, to: devices, by: 10_000) {
            let slice = ids[start..<min(start + 10_000, devices)]
            _ = try await services.fleet.importAllowlist(
                AllowlistImportRequest(entries: slice.map { .init(deviceId: $0, group: "fleet") }), actor: "admin:bench")
            done += slice.count
            importing.update(done)
        }
        importing.finish()

        log("recording \(certificates) certificates")
        let issuer = services.certificates.issuerName
        let now = Date()
        let recording = ProgressBar(total: certificates, label: "recorded")
        let recorded = try await Measured.run(count: certificates, concurrency: 64, progress: recording) { index in
            let serial = Certificate.SerialNumber(bytes: [0x01] + (0..<15).map { _ in UInt8.random(in: 0...255) }).hex
            let device = ids[index % max(1, ids.count)]
            try await server.store.insertCertificate(
                CertificateRecord(
                    serial: serial, subject: "CN=\(device)", issuer: issuer, notBefore: now - 86_400,
                    notAfter: now + TimeInterval(1 + index % 365) * 86_400, profile: "device", pem: "",
                    deviceID: device),
                audit: .init(
                    actor: "device:\(device)", action: index % 3 == 2 ? "certificate.renewed" : "certificate.issued",
                    subject: serial))
        }
        recording.finish()
        guard recorded.failures == 0 else { throw CLIError("recording failed: \(recorded.firstError ?? "?")") }

        let quarantined = max(1, devices / 100)
        log("quarantining \(quarantined) devices")
        let quarantining = ProgressBar(total: quarantined, label: "quarantined")
        _ = try await Measured.run(count: quarantined, concurrency: 8, progress: quarantining) { index in
            _ = try await services.lifecycle.quarantine(
                deviceID: ids[index * 100 % ids.count], reason: "benchmark", actor: "admin:bench")
        }
        quarantining.finish()
        let seedSeconds = (clock.now - seedStart).milliseconds / 1000
        let auditEvents = try await server.store.auditHead().sequence

        log("measuring pages")
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls, redirectConfiguration: .disallow))
        defer { _ = client.shutdown() }
        let base = "https://127.0.0.1:\(running.ready.https)"
        var signIn = HTTPClientRequest(url: base + "/ui/signin")
        signIn.method = .POST
        signIn.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        signIn.body = .bytes(ByteBuffer(string: "token=\(initialized.adminToken)"))
        let answer = try await client.execute(signIn, timeout: .seconds(30))
        guard let setCookie = answer.headers.first(name: "Set-Cookie"), let cookie = setCookie.split(separator: ";").first
        else { throw CLIError("sign-in failed: HTTP \(answer.status.code)") }
        let serial = try await services.certificates.certificates(matching: .init(limit: 1)).first?.serial ?? ""
        let sample = ids[ids.count / 2]
        let paths = [
            "/ui/", "/ui/devices", "/ui/devices?q=\(sample.prefix(10))", "/ui/devices?state=quarantined",
            "/ui/devices?group=fleet&after=\(sample)", "/ui/devices/\(sample)", "/ui/allowlist", "/ui/groups",
            "/ui/certificates", "/ui/certificates?status=revoked", "/ui/certificates/\(serial)", "/ui/audit",
            "/ui/audit?actor=admin:bench", "/ui/audit?action=device.quarantined", "/ui/audit?subject=\(sample)",
            "/ui/connectors", "/ui/rotations",
        ]
        var pages: [Page] = []
        for path in paths {
            var latencies: [Double] = []
            var bytes = 0
            for attempt in 0..<(requests + 3) {
                var request = HTTPClientRequest(url: base + path)
                request.headers.add(name: "Cookie", value: String(cookie))
                let started = clock.now
                let response = try await client.execute(request, timeout: .seconds(60))
                let body = try await response.body.collect(upTo: 16 << 20)
                let elapsed = (clock.now - started).milliseconds
                guard response.status == .ok else { throw CLIError("\(path): HTTP \(response.status.code)") }
                bytes = body.readableBytes
                if attempt >= 3 { latencies.append(elapsed) }  // the first three warm caches up
            }
            latencies.sort()
            func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            pages.append(
                Page(
                    path: path, p50Milliseconds: percentile(0.5), p95Milliseconds: percentile(0.95),
                    maxMilliseconds: latencies.last ?? 0, bytes: bytes))
        }
        return Result(
            devices: devices, certificates: certificates, auditEvents: auditEvents,
            backend: database == nil ? "sqlite" : "postgres", seedSeconds: seedSeconds, pages: pages,
            cores: ProcessInfo.processInfo.activeProcessorCount)
    }
}
