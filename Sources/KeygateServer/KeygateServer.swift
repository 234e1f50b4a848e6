import Foundation
public import Hummingbird
import KeygateHTTP
import KeygateDomain
import KeygatePKI
public import KeygateStore
public import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals
public import X509

/// A running Keygate node: the HTTPS listener (admin and device API), the plain-HTTP listener
/// (CRL, OCSP, CA chain) and the background services, all in one ServiceGroup that stops
/// cleanly on SIGTERM or SIGINT.
public struct KeygateServer: Sendable {
    /// The data folder the node runs from.
    public let directory: DataDirectory
    /// The node's `keygate.json`.
    public let configuration: ServerConfiguration
    /// The node's services; the HTTP routes call nothing else.
    public let services: KeygateServices
    /// The node's store, for tools that read or seed it in bulk (benchmarks, tests). Changes that
    /// must be audited go through ``services``.
    public let store: any ServerStore
    /// The root CA certificate.
    public let rootCertificate: Certificate
    /// The node's logger.
    public let logger: Logger

    /// The ports actually bound (useful with port 0).
    public struct BoundPorts: Sendable {
        /// The HTTPS listener's port.
        public var https: Int
        /// The plain-HTTP listener's port.
        public var http: Int
        /// The metrics listener's port, when `metricsListen` configures one.
        public var metrics: Int?
    }

    /// Loads the data folder: configuration, CA keys (decrypted with `passphrase`), the store.
    public static func load(directory: DataDirectory, passphrase: String?, logger: Logger) async throws -> KeygateServer
    {
        var configuration = try directory.loadConfiguration()
        let rootCertificate = try requireFirst(
            directory.readCertificates(configuration.root.certificate), configuration.root.certificate)
        let issuingCertificate = try requireFirst(
            directory.readCertificates(configuration.issuing.certificate), configuration.issuing.certificate)
        let signer = try await KeyCustody(directory: directory).signer(
            for: configuration.issuing, passphrase: passphrase)
        let authority = try CertificateAuthority(
            certificate: issuingCertificate, chain: [issuingCertificate, rootCertificate], signer: signer)
        let store = try await DatabaseStore.open(directory.databaseLocation(configuration))
        let secrets = passphrase.map(SecretBox.init(passphrase:))
        let anchor = try await AuditAnchor.open(
            directory: directory, configuration: configuration, secrets: secrets, store: store)
        if let secrets {
            try await SecretResealing.run(
                store: store, secrets: secrets, directory: directory, configuration: &configuration, logger: logger)
        }
        let service = try CertificateService(
            store: store, authority: authority, revocation: RevocationPointers(baseURL: configuration.publicBaseURL),
            crlValidity: TimeInterval(configuration.crlValiditySeconds),
            ocspValidity: TimeInterval(configuration.ocspValiditySeconds))
        try await ServerTLSIdentity(directory: directory, configuration: configuration)
            .renewIfNeeded(authority: authority, store: store)
        return KeygateServer(
            directory: directory, configuration: configuration,
            services: KeygateServices(
                store: store, certificates: service, secrets: secrets, anchor: anchor,
                deviceRequestsPerSecond: configuration.deviceRequestsPerSecond, logger: logger),
            store: store, rootCertificate: rootCertificate, logger: logger)
    }

    private static func requireFirst(_ certificates: [Certificate], _ file: String) throws -> Certificate {
        guard let first = certificates.first else { throw KeygateError(.malformedPEM, "\(file) holds no certificate") }
        return first
    }

    /// Guards `/metrics` when the configuration asks for a token.
    var metricsAuth: AdminAuthMiddleware? {
        configuration.metricsRequireToken == true ? AdminAuthMiddleware(store: store) : nil
    }

    /// The router of the HTTPS listener.
    public func httpsRouter() throws -> Router<KeygateRequestContext> {
        let router = Router(context: KeygateRequestContext.self)
        let service = services.certificates
        let auth = AdminAuthMiddleware(store: store)
        router.add(middleware: ErrorMiddleware())
        OperationalRoutes(service: service, metricsAuth: metricsAuth, serveMetrics: configuration.metricsListen == nil)
            .register(on: router)
        AdminAPI(
            service: service, audit: services.audit, tokens: services.tokens, auth: auth, configuration: configuration,
            rootCertificate: rootCertificate
        ).register(on: router)
        AdminOnboardingAPI(fleet: services.fleet, lifecycle: services.lifecycle, auth: auth).register(on: router)
        AdminConnectorAPI(connectors: services.connectors, auth: auth).register(on: router)
        DeviceRoutes(enrollment: services.enrollment, guardian: services.enrollment.sessions.guardian)
            .register(on: router)
        ESTRoutes(enrollment: services.enrollment, guardian: services.enrollment.sessions.guardian)
            .register(on: router)
        PKIRoutes(service: service, chainPEM: service.authority.chainPEM).register(on: router)
        DashboardRoutes(services: services, store: store, imports: AllowlistImportJobs(), health: DashboardHealth())
            .register(on: router)
        return router
    }

    /// The router of the plain-HTTP listener: PKI and operational routes only.
    public func httpRouter() throws -> Router<KeygateRequestContext> {
        let router = Router(context: KeygateRequestContext.self)
        let service = services.certificates
        router.add(middleware: ErrorMiddleware())
        OperationalRoutes(service: service, metricsAuth: metricsAuth, serveMetrics: configuration.metricsListen == nil)
            .register(on: router)
        PKIRoutes(service: service, chainPEM: service.authority.chainPEM).register(on: router)
        return router
    }

    /// The router of the metrics listener (`metricsListen`): `/metrics` and `/healthz` only.
    func metricsRouter() -> Router<KeygateRequestContext> {
        let router = Router(context: KeygateRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        OperationalRoutes(service: services.certificates, metricsAuth: metricsAuth, openAPI: false).register(on: router)
        return router
    }

    /// `host:port` of the metrics listener (`[v6]:port` for IPv6); `nil` without one.
    func metricsAddress() throws -> (host: String, port: Int)? {
        guard let text = configuration.metricsListen else { return nil }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65_535).contains(port)
        else {
            throw KeygateError(.malformedInput, "metricsListen must be HOST:PORT (such as 127.0.0.1:9090), not '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    /// The caps on a listener's connections (in all and per address), with a sampled log line and a
    /// metric when one is reached.
    func connectionLimiter(_ listener: String) -> ConnectionLimiter {
        let log = SampledLog(logger: logger, every: 10)
        let metrics = services.certificates.metrics
        return ConnectionLimiter(
            listener: listener, maximum: configuration.maxConnections ?? ConnectionLimiter.defaultMaximum(),
            perAddress: configuration.maxConnectionsPerAddress ?? 1024
        ) { reason, address in
            metrics.connectionRefused(listener: listener, reason: reason)
            log.notice { count in
                "\(listener) listener: closed \(count) connection(s) over the \(reason) cap; the latest from \(address)"
            }
        }
    }

    /// Runs until SIGTERM/SIGINT (or until the surrounding task is cancelled).
    public func run(onReady: @escaping @Sendable (BoundPorts) -> Void = { _ in }) async throws {
        let metricsAddress = try metricsAddress()
        let ports = PortCollector(expectsMetrics: metricsAddress != nil, onReady: onReady)
        let tls = try ServerTLSIdentity(directory: directory, configuration: configuration).tlsConfiguration()
        // Devices renew over mTLS with their current certificate; any certificate passes the
        // handshake and the renewal routes decide what it proves (others ignore it).
        let idle = TimeAmount.seconds(Int64(configuration.idleTimeoutSeconds ?? 60))
        let https = Application(
            router: try httpsRouter(),
            server: try TLSListener.http1(tls, limiter: connectionLimiter("https"), idleTimeout: idle),
            configuration: .init(
                address: .hostname(configuration.https.host, port: configuration.https.port), serverName: "keygate"),
            onServerRunning: { channel in ports.set(https: channel.localAddress?.port ?? 0) },
            logger: logger)
        let http = Application(
            router: try httpRouter(),
            server: TLSListener.plainHTTP1(limiter: connectionLimiter("http"), idleTimeout: idle),
            configuration: .init(
                address: .hostname(configuration.http.host, port: configuration.http.port), serverName: "keygate"),
            onServerRunning: { channel in ports.set(http: channel.localAddress?.port ?? 0) },
            logger: logger)
        var listeners: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: https), .init(service: http)]
        if let metricsAddress {
            listeners.append(
                .init(
                    service: Application(
                        router: metricsRouter(),
                        server: TLSListener.plainHTTP1(limiter: connectionLimiter("metrics"), idleTimeout: idle),
                        configuration: .init(
                            address: .hostname(metricsAddress.host, port: metricsAddress.port), serverName: "keygate"),
                        onServerRunning: { channel in ports.set(metrics: channel.localAddress?.port ?? 0) },
                        logger: logger)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: listeners + [
                    .init(service: PeriodicService.crlRefresh(services.certificates, store: store, logger: logger)),
                    .init(service: PeriodicService.ocspRefresh(services.certificates, logger: logger)),
                    .init(
                        service: PeriodicService.clusterWatch(services.certificates, store: store, logger: logger)),
                    .init(service: PeriodicService.heartbeat(store: store, logger: logger)),
                    .init(
                        service: PeriodicService.expiryScan(
                            ExpiryScanner(service: services.certificates, logger: logger), store: store)),
                    .init(
                        service: PeriodicService.auditCheckpoints(
                            services.audit, store: store, every: .seconds(configuration.auditCheckpointSeconds ?? 60),
                            logger: logger)),
                    .init(
                        service: OutboxDispatcher(
                            store: store, secrets: services.secrets, logger: logger,
                            metrics: services.certificates.metrics)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Collects the two bound ports and reports them once both are known.
private final class PortCollector: Sendable {
    private let ports = Mutex<(https: Int?, http: Int?, metrics: Int?)>((nil, nil, nil))
    private let expectsMetrics: Bool
    private let onReady: @Sendable (KeygateServer.BoundPorts) -> Void

    init(expectsMetrics: Bool, onReady: @escaping @Sendable (KeygateServer.BoundPorts) -> Void) {
        self.expectsMetrics = expectsMetrics
        self.onReady = onReady
    }

    func set(https: Int? = nil, http: Int? = nil, metrics: Int? = nil) {
        let ready = ports.withLock { ports -> KeygateServer.BoundPorts? in
            if let https { ports.https = https }
            if let http { ports.http = http }
            if let metrics { ports.metrics = metrics }
            guard let a = ports.https, let b = ports.http, !expectsMetrics || ports.metrics != nil else { return nil }
            return .init(https: a, http: b, metrics: ports.metrics)
        }
        if let ready { onReady(ready) }
    }
}

extension KeygateServer {
    /// The same server with its configuration changed (listener limits, timeouts) for this run only.
    public func with(_ change: (inout ServerConfiguration) -> Void) -> KeygateServer {
        var configuration = self.configuration
        change(&configuration)
        return KeygateServer(
            directory: directory, configuration: configuration, services: services, store: store,
            rootCertificate: rootCertificate, logger: logger)
    }

    /// The same server listening on other ports (`nil` keeps the configured one; 0 picks a free one).
    public func withPorts(https: Int?, http: Int?) -> KeygateServer {
        var configuration = self.configuration
        if let https { configuration.https.port = https }
        if let http { configuration.http.port = http }
        return KeygateServer(
            directory: directory, configuration: configuration, services: services, store: store,
            rootCertificate: rootCertificate, logger: logger)
    }
}
