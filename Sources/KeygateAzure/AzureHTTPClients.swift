public import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOSSL

/// Long-lived HTTP clients for Azure, one per trust anchor (`nil`: the system's roots). They live as
/// long as the process, like the signers that use them, so they are never shut down.
public enum AzureHTTPClients {
    private static let clients = NIOLockedValueBox<[String: HTTPClient]>([:])

    public static func client(trusting caCertificate: String?) -> HTTPClient {
        clients.withLockedValue { clients in
            let key = caCertificate ?? ""
            if let existing = clients[key] { return existing }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caCertificate { tls.trustRoots = .file(caCertificate) }
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
            clients[key] = client
            return client
        }
    }
}
