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
import X509

/// Revocation at scale: records `count` device certificates, revokes them all through the
/// certificate service (as `keygate cert revoke` does), then times a CRL of every entry and
/// measures OCSP answers per second in process and over HTTP.
struct RevocationBenchmark {
    let count: Int
    let concurrency: Int
    let ocspRequests: Int
    let ocspConcurrency: Int
    /// A `wrk` binary: HTTP OCSP is then also measured with it (a C load generator that leaves
    /// more of the two cores to the server than the Swift client does).
    let wrk: String?

    struct Result: Codable {
        var certificates: Int
        var revokeSeconds: Double
        var revocationsPerSecond: Double
        /// p99 latency of the first and the last tenth of the revocations: equal when revoking
        /// does not grow with what is revoked already.
        var revokeFirstTenthP99Milliseconds: Double
        var revokeLastTenthP99Milliseconds: Double
        /// Median of three forced rebuilds (read every entry, encode, sign, record).
        var crlSeconds: Double
        var crlEntries: Int
        var crlBytes: Int
        var ocspPresigned: Int
        var ocspInProcessPerSecond: Double
        var ocspHTTPPerSecond: Double
        var ocspHTTPP99Milliseconds: Double
        var ocspHTTPFailures: Int
        var ocspWrkPerSecond: Double?
        var ocspWrkP99Milliseconds: Double?
        /// The same wrk run against `/pki/ca.pem` (fixed bytes, no work): this setup's HTTP ceiling.
        var staticWrkPerSecond: Double?
        var cores: Int

        var summary: String {
            String(
                format: """
                    revoked %d certificates in %.1f s (%.0f/s; p99 %.2f ms for the first tenth, %.2f ms for the last)
                    CRL of %d entries built and signed in %.3f s (%d bytes)
                    OCSP: %d answers signed ahead; %.0f answers/s in process, %.0f/s over HTTP from AsyncHTTPClient (p99 %.2f ms, %d failures)
                    %@%d cores
                    """, certificates, revokeSeconds, revocationsPerSecond, revokeFirstTenthP99Milliseconds,
                revokeLastTenthP99Milliseconds, crlEntries, crlSeconds, crlBytes, ocspPresigned,
                ocspInProcessPerSecond, ocspHTTPPerSecond, ocspHTTPP99Milliseconds, ocspHTTPFailures,
                ocspWrkPerSecond.map {
                    String(
                        format:
                            "OCSP over HTTP from wrk (GET, keep-alive): %.0f answers/s (p99 %.2f ms); GET /pki/ca.pem with the same wrk: %.0f/s\n",
                        $0, ocspWrkP99Milliseconds ?? 0, staticWrkPerSecond ?? 0)
                } ?? "", cores)
        }
    }

    func run(log: @escaping @Sendable (String) -> Void) async throws -> Result {
        let node = try await BenchServer.start("revocation")
        defer { node.stop() }
        let server = node.server
        let service = server.services.certificates
        let running = node.running
        let bound = running.ready

        // Records only: signing is measured by `bench issue`; here what matters is how many exist.
        log("recording \(count) certificates")
        let serials = (0..<count).map { _ in
            Certificate.SerialNumber(bytes: [0x01] + (0..<15).map { _ in UInt8.random(in: 0...255) }).hex
        }
        let issuer = service.issuerName
        let now = Date()
        let recording = ProgressBar(total: count, label: "recorded")
        _ = try await Measured.run(count: count, concurrency: 64, progress: recording) { index in
            try await server.store.insertCertificate(
                CertificateRecord(
                    serial: serials[index], subject: "CN=bench-\(index)", issuer: issuer, notBefore: now,
                    notAfter: now + 365 * 86_400, profile: "device", pem: "", deviceID: "bench-\(index)"),
                audit: .init(actor: "bench", action: "certificate.issued", subject: serials[index]))
        }
        recording.finish()

        log("revoking them")
        // In three runs (first tenth, the middle, last tenth) so the latency of the last revocations,
        // with nearly everything revoked already, can be compared with the first ones.
        let revoking = ProgressBar(total: count, label: "revoked")
        let tenth = max(1, count / 10)
        let phases = [0..<tenth, tenth..<max(tenth, count - tenth), max(tenth, count - tenth)..<count]
        var runs: [Measured] = []
        for phase in phases where !phase.isEmpty {
            let run = try await Measured.run(count: phase.count, concurrency: concurrency, progress: revoking) {
                index in
                _ = try await service.revoke(
                    serial: serials[phase.lowerBound + index], reason: .keyCompromise, actor: "bench")
            }
            guard run.failures == 0 else { throw CLIError("revocations failed: \(run.firstError ?? "?")") }
            runs.append(run)
        }
        revoking.finish()
        let revokeSeconds = runs.reduce(0) { $0 + $1.seconds }

        log("building the CRL")
        let clock = ContinuousClock()
        var builds: [Double] = []
        var crl = try await service.crl.current()
        for _ in 0..<3 {
            let started = clock.now
            crl = try await service.crl.rebuildNow()
            builds.append((clock.now - started).milliseconds / 1000)
        }
        let crlSeconds = builds.sorted()[1]
        guard crl.entryCount == count else { throw CLIError("the CRL has \(crl.entryCount) entries, not \(count)") }

        log("measuring OCSP")
        let requests = try serials.prefix(min(count, 10_000)).map {
            OCSPRequest.encode([try service.ocsp.certID(serial: Certificate.SerialNumber(hex: $0)!)])
        }
        let inProcess = try await Measured.run(count: ocspRequests, concurrency: ocspConcurrency) { index in
            let answer = await service.answerOCSP(requests[index % requests.count])
            guard answer.count > 5 else { throw CLIError("OCSP error answer") }
        }
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)))
        defer { _ = client.shutdown() }
        let url = "http://127.0.0.1:\(bound.http)/pki/ocsp"
        let http = try await Measured.run(count: ocspRequests, concurrency: ocspConcurrency) { index in
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/ocsp-request")
            request.body = .bytes(ByteBuffer(bytes: requests[index % requests.count]))
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 16)
            guard response.status == .ok, body.readableBytes > 5 else { throw CLIError("OCSP over HTTP failed") }
        }
        var wrkResult: (perSecond: Double, p99: Double)?
        var staticResult: (perSecond: Double, p99: Double)?
        if let wrk {
            log("measuring OCSP with wrk")
            let paths = requests.prefix(1000).map {
                "/pki/ocsp/"
                    + (Data($0).base64EncodedString().addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            }
            wrkResult = try runWrk(wrk, port: bound.http, paths: paths)
            staticResult = try runWrk(wrk, port: bound.http, paths: ["/pki/ca.pem"])
        }
        return Result(
            certificates: count, revokeSeconds: revokeSeconds, revocationsPerSecond: Double(count) / revokeSeconds,
            revokeFirstTenthP99Milliseconds: runs.first!.percentile(0.99),
            revokeLastTenthP99Milliseconds: runs.last!.percentile(0.99),
            crlSeconds: crlSeconds, crlEntries: crl.entryCount, crlBytes: crl.der.count,
            ocspPresigned: service.keptOCSPAnswers, ocspInProcessPerSecond: inProcess.perSecond,
            ocspHTTPPerSecond: http.perSecond, ocspHTTPP99Milliseconds: http.percentile(0.99),
            ocspHTTPFailures: http.failures, ocspWrkPerSecond: wrkResult?.perSecond,
            ocspWrkP99Milliseconds: wrkResult?.p99,
            staticWrkPerSecond: staticResult?.perSecond,
            cores: ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Runs wrk for 10 s with 64 connections, cycling through GET `paths` (OCSP requests are
    /// RFC 6960 §A.1 GETs); answers its requests per second and p99 latency.
    private func runWrk(_ wrk: String, port: Int, paths: [String]) throws -> (perSecond: Double, p99: Double) {
        let script = NSTemporaryDirectory() + "keygate-ocsp-\(UUID().uuidString).lua"
        defer { try? FileManager.default.removeItem(atPath: script) }
        let lua = """
            paths = {\(paths.map { "\"\($0)\"" }.joined(separator: ","))}
            counter = 0
            request = function()
              counter = counter + 1
              return wrk.format("GET", paths[(counter % #paths) + 1])
            end
            done = function(summary, latency, requests)
              io.write(string.format("keygate-p99-us %d\\n", latency:percentile(99)))
              io.write(string.format("keygate-errors %d\\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
            end
            """
        try Data(lua.utf8).write(to: URL(fileURLWithPath: script))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrk)
        process.arguments = ["-t", "1", "-c", "64", "-d", "10s", "-s", script, "http://127.0.0.1:\(port)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        func value(after label: String) -> Double? {
            output.split(separator: "\n").first { $0.hasPrefix(label) }.flatMap {
                Double($0.dropFirst(label.count).trimmingCharacters(in: .whitespaces))
            }
        }
        guard process.terminationStatus == 0, let perSecond = value(after: "Requests/sec:") else {
            throw CLIError("wrk failed: \(output)")
        }
        if let errors = value(after: "keygate-errors"), errors > 0 {
            throw CLIError("wrk saw \(Int(errors)) errors: \(output)")
        }
        return (perSecond, (value(after: "keygate-p99-us") ?? 0) / 1000)
    }
}
