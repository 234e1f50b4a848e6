import ArgumentParser
import Foundation
import KeygatePKCS11
import KeygatePKI
import KeygateSandbox
import KeygateServer

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure Keygate on this machine.",
        subcommands: [Issue.self, Outbox.self, Sandbox.self, Revocation.self, Dashboard.self])

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
        @Option(
            help: "In-process: where the issuing CA key lives: software, pkcs11 or azure-key-vault (a sandbox vault).")
        var keyStore: String = "software"
        @Option(help: "pkcs11: the module.") var pkcs11Module: String = "/usr/lib/softhsm/libsofthsm2.so"
        @Option(help: "pkcs11: the token's label (a benchmark key is generated in it).") var pkcs11Token: String?
        @Option(help: "pkcs11: a file holding the user PIN (else KEYGATE_PKCS11_PIN).") var pkcs11PinFile: String?
        @Option(help: "pkcs11: sessions in the signer's pool.") var pkcs11Sessions: Int = PKCS11Signer.defaultPoolSize
        @Flag(help: "Print the result as JSON.") var json = false
        @Option(help: "Record into this empty PostgreSQL database (postgres://USER@HOST:PORT/DATABASE) instead of SQLite.")
        var database: String?

        func validate() throws {
            guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be 1 to 1,000,000") }
            guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1024") }
            guard target == "keygate" || target == "cfssl" else {
                throw ValidationError("--target is keygate or cfssl")
            }
            if target == "cfssl" && url == nil { throw ValidationError("--target cfssl needs --url") }
            guard ["software", "pkcs11", "azure-key-vault"].contains(keyStore) else {
                throw ValidationError("--key-store is software, pkcs11 or azure-key-vault")
            }
            if keyStore != "software" && (http || target != "keygate") {
                throw ValidationError("--key-store applies to the in-process benchmark")
            }
            if keyStore == "pkcs11" && pkcs11Token == nil {
                throw ValidationError("--key-store pkcs11 needs --pkcs11-token")
            }
            guard (1...64).contains(pkcs11Sessions) else { throw ValidationError("--pkcs11-sessions must be 1 to 64") }
        }

        private func store() throws -> IssuanceBenchmark.KeyStore {
            switch keyStore {
            case "pkcs11":
                let token = PKCS11Token(
                    module: try PKCS11Module.load(pkcs11Module), label: pkcs11Token!,
                    pin: try PKCS11PIN.resolve(file: pkcs11PinFile))
                return .pkcs11(token, sessions: pkcs11Sessions)
            case "azure-key-vault": return .azureKeyVault
            default: return .software
            }
        }

        func run() async throws {
            guard let algorithm = KeyAlgorithm(flag: keyAlgorithm) else {
                throw ValidationError("unknown key algorithm '\(keyAlgorithm)'")
            }
            let csrs = try await runReportingErrors {
                try IssuanceBenchmark.loadOrMakeCSRs(
                    count: count, algorithm: algorithm, directory: csrDir, saveTo: saveCsrs)
            }
            var benchmark = IssuanceBenchmark(csrs: csrs, concurrency: concurrency, algorithm: algorithm)
            benchmark.database = database
            let result: IssuanceBenchmark.Result
            if target == "cfssl" {
                result = try await runReportingErrors { try await benchmark.runCFSSL(url: url!) }
            } else if http {
                result = try await runReportingErrors { try await benchmark.runHTTP() }
            } else {
                result = try await runReportingErrors { try await benchmark.runInProcess(keyStore: try store()) }
            }
            if json { return try printJSON(result) }
            print(result.summary)
        }
    }

    struct Sandbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Devices over TLS MQTT against a running sandbox: DPS registration rate, hub connect rate, held connections.",
            discussion: """
                Start `keygate sandbox --data-dir DIR` first (raise `ulimit -n` for both processes above
                twice the device count). Each device gets a certificate from a CA made for the run, registers
                with DPS through an enrollment group, then all connect to the hub at once, send one message
                and stay connected for --hold seconds (scripts/bench-sandbox.sh samples the sandbox's memory then).
                """)

        @Option(help: "The running sandbox's data folder (holds connection.json).") var dataDir: String
        @Option(help: "How many devices.") var devices: Int = 1000
        @Option(help: "How many registrations or connects at once.") var concurrency: Int = 100
        @Option(help: "Seconds to hold all connections open.") var hold: Double = 5
        @Flag(help: "Print the result as JSON.") var json = false

        func validate() throws {
            guard (1...100_000).contains(devices) else { throw ValidationError("--devices must be 1 to 100,000") }
            guard (1...1000).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1,000") }
            guard (0...3600).contains(hold) else { throw ValidationError("--hold must be 0 to 3,600 seconds") }
        }

        func run() async throws {
            let client: SandboxControlClient
            do {
                client = try SandboxControlClient(dataDirectory: dataDir)
            } catch let error as SandboxControlError {
                throw CLIError(error.message)
            }
            let result = try await SandboxBenchmark(
                connection: client.connection, devices: devices, concurrency: concurrency, hold: hold
            ).run()
            if json { return try printJSON(result) }
            print(result.summary)
        }
    }

    struct Revocation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revocation at scale: revoke many certificates, then time the CRL and measure OCSP.",
            discussion: """
                Starts a temporary server, records --certificates device certificates (records only; signing \
                is what `bench issue` measures), revokes every one through the certificate service, builds \
                and signs the CRL of all of them, then sends OCSP requests without a nonce (served from \
                answers signed ahead) in process and over HTTP to /pki/ocsp.
                """)

        @Option(help: "How many certificates to record and revoke.") var certificates: Int = 100_000
        @Option(help: "Revocations at once.") var concurrency: Int = 8
        @Option(help: "OCSP requests to send (each way).") var ocspRequests: Int = 100_000
        @Option(help: "OCSP requests at once.") var ocspConcurrency: Int = 64
        @Option(help: "Also measure OCSP over HTTP with this wrk binary (GET requests, 64 connections, 10 s).")
        var wrk: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func validate() throws {
            guard (100...2_000_000).contains(certificates) else {
                throw ValidationError("--certificates must be 100 to 2,000,000")
            }
            guard (1...1024).contains(concurrency), (1...1024).contains(ocspConcurrency) else {
                throw ValidationError("--concurrency and --ocsp-concurrency must be 1 to 1024")
            }
            guard (1...10_000_000).contains(ocspRequests) else {
                throw ValidationError("--ocsp-requests must be 1 to 10,000,000")
            }
        }

        func run() async throws {
            let benchmark = RevocationBenchmark(
                count: certificates, concurrency: concurrency, ocspRequests: ocspRequests,
                ocspConcurrency: ocspConcurrency, wrk: wrk)
            let result = try await runReportingErrors {
                try await benchmark.run { FileHandle.standardError.write(Data("\($0)\n".utf8)) }
            }
            if json { return try printJSON(result) }
            print(result.summary)
        }
    }

    struct Dashboard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Dashboard page latency with a large fleet in the database.",
            discussion: """
                Starts a temporary server, seeds --devices devices (1 % quarantined, audited) and \
                --certificates certificate records with their audit events, signs in to /ui/ like a browser and \
                requests every page --requests times, one at a time; prints p50, p95 and the largest latency \
                of each. scripts/bench-dashboard.sh runs it in a release build.
                """)

        @Option(help: "How many devices.") var devices: Int = 100_000
        @Option(help: "How many certificate records.") var certificates: Int = 200_000
        @Option(help: "Requests per page (after three to warm up).") var requests: Int = 30
        @Option(help: "Seed into this empty PostgreSQL database (postgres://USER@HOST:PORT/DATABASE) instead of SQLite.")
        var database: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func validate() throws {
            guard (100...2_000_000).contains(devices), (100...5_000_000).contains(certificates) else {
                throw ValidationError("--devices must be 100 to 2,000,000 and --certificates 100 to 5,000,000")
            }
            guard (1...10_000).contains(requests) else { throw ValidationError("--requests must be 1 to 10,000") }
        }

        func run() async throws {
            let benchmark = DashboardBenchmark(
                devices: devices, certificates: certificates, requests: requests, database: database)
            let result = try await runReportingErrors {
                try await benchmark.run { FileHandle.standardError.write(Data("\($0)\n".utf8)) }
            }
            if json { return try printJSON(result) }
            print(result.summary)
        }
    }
}
