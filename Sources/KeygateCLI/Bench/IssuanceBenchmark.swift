import AsyncHTTPClient
import Crypto
import Foundation
import KeygateHTTP
import KeygateAzure
import KeygateDomain
import KeygatePKCS11
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftASN1
import X509

/// Issues a batch of CSRs with bounded concurrency and measures throughput and latency.
struct IssuanceBenchmark {
    let csrs: [String]
    let concurrency: Int
    let algorithm: KeyAlgorithm
    /// An empty PostgreSQL database to record into; `nil`: SQLite in a temporary folder.
    var database: String? = nil
    /// `sqlite` or `postgres`, for the mode names.
    var backend: String { database == nil ? "sqlite" : "postgres" }

    struct Result: Codable {
        var mode: String
        var count: Int
        var concurrency: Int
        var seconds: Double
        var perSecond: Double
        var p50Milliseconds: Double
        var p99Milliseconds: Double
        var failures: Int
        var cores: Int

        var summary: String {
            String(
                format:
                    "%@: %d certificates in %.2f s = %.0f/s (concurrency %d, p50 %.2f ms, p99 %.2f ms, %d failures, %d cores)",
                mode, count, seconds, perSecond, concurrency, p50Milliseconds, p99Milliseconds, failures, cores)
        }
    }

    // MARK: CSRs

    static func loadOrMakeCSRs(count: Int, algorithm: KeyAlgorithm, directory: String?, saveTo: String?) throws
        -> [String]
    {
        if let directory {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".csr") }
                .sorted()
            guard !names.isEmpty else { throw CLIError("no *.csr files in \(directory)") }
            let texts = try names.map { try String(contentsOfFile: directory + "/" + $0, encoding: .utf8) }
            return (0..<count).map { texts[$0 % texts.count] }
        }
        var csrs: [String] = []
        csrs.reserveCapacity(count)
        for index in 0..<count {
            let key = try algorithm.generatePrivateKey()
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName("bench-\(index)") }, privateKey: key,
                attributes: .init())
            csrs.append(try csr.serializeAsPEM().pemString)
        }
        if let saveTo {
            try FileManager.default.createDirectory(atPath: saveTo, withIntermediateDirectories: true)
            for (index, csr) in csrs.enumerated() {
                try Data(csr.utf8).write(to: URL(fileURLWithPath: saveTo + String(format: "/%06d.csr", index)))
            }
        }
        return csrs
    }

    // MARK: Runs

    /// Where the benchmark's issuing CA key lives.
    enum KeyStore {
        case software
        case pkcs11(PKCS11Token, sessions: Int)
        case azureKeyVault

        var name: String {
            switch self {
            case .software: return "software"
            case .pkcs11: return "pkcs11"
            case .azureKeyVault: return "azure-key-vault"
            }
        }
    }

    func runInProcess(keyStore: KeyStore = .software) async throws -> Result {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try await DatabaseStore.open(
            database.map { try DatabaseLocation($0) } ?? .sqlite(path: folder + "/bench.sqlite"))
        let root = try await CertificateAuthority.makeRoot(
            name: "Bench Root", signer: try SoftwareSigner.generate(algorithm))
        let signer: any CertificateSigner
        var sandboxRunning: BackgroundServer<SandboxServer.Connection>?
        defer { sandboxRunning?.cancel() }
        switch keyStore {
        case .software:
            signer = try SoftwareSigner.generate(algorithm)
        case .pkcs11(let token, let sessions):
            signer = try await PKCS11Signer.generate(
                token: token, label: "keygate-bench-\(UUID().uuidString.prefix(8))", algorithm: algorithm,
                poolSize: sessions)
        case .azureKeyVault:
            // A sandbox in this process stands in for the vault (HTTPS, AAD token, ES256 per signature).
            var options = SandboxServer.Options(dataDirectory: folder + "/sandbox")
            options.httpsPort = 0
            options.mqttPort = nil
            var logger = Logger(label: "keygate-bench-sandbox")
            logger.logLevel = .critical
            let sandbox = SandboxServer(options: options, logger: logger)
            let running = try await BackgroundServer.start(sandbox.run)
            sandboxRunning = running
            let connection = running.ready
            let kv = connection.keyVault
            let http = AzureHTTPClients.client(trusting: connection.caCertificate)
            let tokens = AADTokenProvider(
                tokenEndpoint: kv.tokenEndpoint, clientID: kv.clientId, clientSecret: kv.clientSecret, scope: kv.scope,
                http: http)
            signer = try await AzureKeyVaultSigner.create(
                vaultURL: kv.vaultURL, name: "keygate-bench", tokens: tokens, http: http)
        }
        let issuing = try await root.makeSubordinate(name: "Bench Issuing", signer: signer)
        let service = try CertificateService(
            store: store, authority: issuing, revocation: RevocationPointers(baseURL: "http://127.0.0.1:8080"))
        return try await measure(mode: "in-process, \(keyStore.name) key, \(backend)") { index in
            _ = try await service.issue(
                csr: Array(csrs[index].utf8), profile: .device, identity: .init(commonName: "bench-\(index)"),
                actor: "bench")
        }
    }

    func runHTTP() async throws -> Result {
        let node = try await BenchServer.start("issue", database: database) { $0.keyAlgorithm = algorithm }
        defer { node.stop() }
        let directory = node.directory
        let initialized = node.initialized
        let bound = node.ports

        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(directory.path(initialized.configuration.root.certificate))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let url = "https://127.0.0.1:\(bound.https)/admin/v1/certificates"
        let token = initialized.adminToken
        let encoder = JSONEncoder()
        let bodies = try csrs.enumerated().map { index, csr in
            try encoder.encode(IssueBody(csr: csr, profile: "device", subject: .init(commonName: "bench-\(index)")))
        }
        let result = try await measure(mode: "https+\(backend)") { index in
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: bodies[index]))
            let response = try await client.execute(request, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .created else { throw CLIError("HTTP \(response.status.code)") }
        }
        try await client.shutdown()
        await node.running.stop()
        return result
    }

    func runCFSSL(url: String) async throws -> Result {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let endpoint = (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/api/v1/cfssl/sign"
        let bodies = try csrs.map { try JSONSerialization.data(withJSONObject: ["certificate_request": $0]) }
        let result = try await measure(mode: "cfssl") { index in
            var request = HTTPClientRequest(url: endpoint)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: bodies[index]))
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok, String(buffer: body).contains("\"success\":true") else {
                throw CLIError("cfssl answered HTTP \(response.status.code)")
            }
        }
        try await client.shutdown()
        return result
    }

    // MARK: Measuring

    private func measure(mode: String, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws
        -> Result
    {
        let measured = try await Measured.run(count: csrs.count, concurrency: concurrency, operation)
        return Result(
            mode: mode, count: csrs.count, concurrency: concurrency, seconds: measured.seconds,
            perSecond: measured.perSecond, p50Milliseconds: measured.percentile(0.5),
            p99Milliseconds: measured.percentile(0.99), failures: measured.failures,
            cores: ProcessInfo.processInfo.activeProcessorCount)
    }

    private func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "keygate-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
