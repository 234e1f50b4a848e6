public import AsyncHTTPClient
import Synchronization
public import NIOCore
import NIOSSL

/// Long-lived HTTP clients for Azure, one per trust anchor (`nil`: the system's roots). They live as
/// long as the process, like the signers that use them, so they are never shut down.
public enum AzureHTTPClients {
    private static let clients = Mutex<[String: HTTPClient]>([:])

    /// The shared HTTP client that trusts `caCertificate` (a PEM file; `nil`: the system's roots), one
    /// per trust anchor.
    public static func client(trusting caCertificate: String?) -> HTTPClient {
        clients.withLock { clients in
            let key = caCertificate ?? ""
            if let existing = clients[key] { return existing }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caCertificate { tls.trustRoots = .file(caCertificate) }
            var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
            // A refused or failed connection fails the attempt at once; Keygate's own policy retries it
            // (with backoff), instead of the client retrying until the attempt's whole timeout.
            configuration.connectionPool.retryConnectionEstablishment = false
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            clients[key] = client
            return client
        }
    }
}

/// How Keygate's Azure clients call: per-attempt timeout and retries.
public struct AzureRequestPolicy: Sendable {
    /// How long one attempt may take.
    public var timeout: TimeAmount
    /// Attempts per call, the first included.
    public var attempts: Int
    /// The longest Retry-After waited for inside one call, in seconds; longer ones go to the caller.
    public var maximumWait: Double
    /// The first backoff, doubled per attempt, with ±50% jitter.
    public var baseDelay: Double

    /// A policy: `timeout` per attempt, at most `attempts`, a Retry-After waited for up to `maximumWait`
    /// seconds, backoff from `baseDelay` seconds.
    public init(timeout: TimeAmount, attempts: Int, maximumWait: Double, baseDelay: Double) {
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.maximumWait = maximumWait
        self.baseDelay = baseDelay
    }

    /// Four attempts of 10 s, Retry-After up to 4 s, backoff from 0.2 s.
    public static let standard = AzureRequestPolicy(timeout: .seconds(10), attempts: 4, maximumWait: 4, baseDelay: 0.2)

    func backoff(attempt: Int) -> Double {
        baseDelay * Double(1 << min(attempt - 1, 10)) * Double.random(in: 0.5...1.5)
    }
}
