import ArgumentParser
import Foundation
import KeygatePKI

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure Keygate on this machine.", subcommands: [Issue.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Certificates per second: in-process issuance, or over HTTPS with the database (--http).",
            discussion: """
                In-process: CSR check, signing and recording in a temporary SQLite database.
                --http: starts a temporary server and signs through POST /admin/v1/certificates.
                --target cfssl --url URL: sends the same CSRs to a running `cfssl serve` for comparison.
                """)

        @Flag(help: "Issue over HTTPS through a temporary server.") var http = false
        @Option(help: "How many certificates.") var count: Int = 2000
        @Option(help: "How many requests at once.") var concurrency: Int = 8
        @Option(help: "CA and CSR key algorithm.") var keyAlgorithm: String = "ecdsa-p256"
        @Option(help: "Read CSRs (*.csr, PEM) from this folder instead of generating them.") var csrDir: String?
        @Option(help: "Write the generated CSRs into this folder (for other tools).") var saveCsrs: String?
        @Option(help: "keygate (default) or cfssl.") var target: String = "keygate"
        @Option(help: "With --target cfssl: the cfssl server URL.") var url: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func validate() throws {
            guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be 1 to 1,000,000") }
            guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1024") }
            guard target == "keygate" || target == "cfssl" else {
                throw ValidationError("--target is keygate or cfssl")
            }
            if target == "cfssl" && url == nil { throw ValidationError("--target cfssl needs --url") }
        }

        func run() async throws {
            guard let algorithm = KeyAlgorithm(flag: keyAlgorithm) else {
                throw ValidationError("unknown key algorithm '\(keyAlgorithm)'")
            }
            let csrs = try await runReportingErrors {
                try IssuanceBenchmark.loadOrMakeCSRs(
                    count: count, algorithm: algorithm, directory: csrDir, saveTo: saveCsrs)
            }
            let benchmark = IssuanceBenchmark(csrs: csrs, concurrency: concurrency, algorithm: algorithm)
            let result: IssuanceBenchmark.Result
            if target == "cfssl" {
                result = try await runReportingErrors { try await benchmark.runCFSSL(url: url!) }
            } else if http {
                result = try await runReportingErrors { try await benchmark.runHTTP() }
            } else {
                result = try await runReportingErrors { try await benchmark.runInProcess() }
            }
            if json { return try printJSON(result) }
            print(result.summary)
        }
    }
}
