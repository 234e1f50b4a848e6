import Crypto
import Foundation
import Hummingbird
import KeygateHTTP
import KeygatePKI
public import Logging
import Synchronization
import NIOCore
import NIOSSL
import ServiceLifecycle
import UnixSignals
import X509

/// `keygate sandbox`: a local stand-in for the Azure services Keygate talks to, with its own CA: the
/// DPS service and device APIs (HTTPS and MQTT), the IoT Hub registry and device MQTT, IoT Central,
/// Key Vault keys and AAD's client-credentials token endpoint, with fault injection and quotas.
public struct SandboxServer: Sendable {
    /// How a sandbox runs: its data folder, listeners and faults.
    public struct Options: Sendable {
        /// The folder of its state, CA and `connection.json`.
        public var dataDirectory: String
        /// Names for the TLS certificate besides localhost, 127.0.0.1 and ::1.
        public var hosts: [String] = []
        /// The address both listeners bind to.
        public var listenHost = "127.0.0.1"
        /// The HTTPS port of every REST surface (0: a free one).
        public var httpsPort = 8443
        /// MQTT over TLS for DPS and IoT Hub devices (Microsoft's SDKs always use 8883); 0: any free port; nil: off.
        public var mqttPort: Int? = 8883
        /// Faults and quotas from the start, on the surfaces named (all when empty).
        public var faults: FaultSettings.Change?
        /// The surfaces `faults` applies to; empty: all.
        public var faultSurfaces: [SandboxSurface] = []
        /// Whether every change is written to `state.json` before it is answered (the default, so a
        /// restarted sandbox keeps its enrollments and devices). Off, the state lives in memory only:
        /// for benchmarks that write tens of thousands of enrollments, where rewriting the whole file
        /// per change, not Keygate, would be what is measured.
        public var persistState = true

        /// Defaults, with state in `dataDirectory`.
        public init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }
    }

    /// What a client needs to talk to the sandbox; also written to `connection.json`.
    public struct Connection: Codable, Sendable {
        /// Key Vault and the AAD client that may use it.
        public struct KeyVault: Codable, Sendable {
            /// The vault's base URL (`{vaultURL}/keys/...`).
            public var vaultURL: String
            /// The AAD v2.0 token endpoint.
            public var tokenEndpoint: String
            /// The tenant ID in the token endpoint.
            public var tenantId: String
            /// The application (client) ID.
            public var clientId: String
            /// The client secret (test material).
            public var clientSecret: String
            /// The scope to ask tokens for.
            public var scope: String
        }
        /// The sandbox's own control endpoint (faults and quotas).
        public struct Control: Codable, Sendable {
            /// `GET` the report, `POST` a change of faults.
            public var faultsURL: String
            /// `GET` the inventory: enrollments, registrations, hub devices.
            public var inspectURL: String
            /// The bearer token of the control endpoint.
            public var token: String
        }
        /// The Device Provisioning Service.
        public struct DPS: Codable, Sendable {
            /// For `ProvisioningServiceClient` and Keygate's DPS connector.
            public var serviceConnectionString: String
            /// The ID scope devices register under.
            public var idScope: String
            /// The device endpoint host (`provisioning_host`); MQTT on `mqttPort`, HTTPS on `deviceHTTPSURL`.
            public var deviceEndpoint: String
            /// The device API over HTTPS (`{url}/{idScope}/registrations/...`).
            public var deviceHTTPSURL: String
            /// The MQTT port of the device API; `nil`: MQTT is off.
            public var mqttPort: Int?
        }
        /// The IoT Hub DPS assigns devices to.
        public struct Hub: Codable, Sendable {
            /// What DPS assigns and devices connect to (MQTT on `mqttPort`).
            public var hostName: String
            /// For `IoTHubRegistryManager`: `HostName=host:port;SharedAccessKeyName=iothubowner;...`.
            public var registryConnectionString: String
            /// The MQTT port devices connect to; `nil`: MQTT is off.
            public var mqttPort: Int?
        }
        /// The IoT Central application.
        public struct Central: Codable, Sendable {
            /// The app's base URL (`{appURL}/api/devices/...`).
            public var appURL: String
            /// An API token (`SharedAccessSignature sr=…&sig=…&skn=…&se=…`); AAD tokens with scope
            /// `https://apps.azureiotcentral.com/.default` work too.
            public var apiToken: String
        }
        /// The sandbox CA (PEM file) every client must trust.
        public var caCertificate: String
        /// The HTTPS base URL of every REST surface.
        public var baseURL: String
        /// DPS: service and device APIs.
        public var dps: DPS
        /// IoT Hub: registry and device MQTT.
        public var hub: Hub
        /// IoT Central.
        public var central: Central
        /// Key Vault and AAD.
        public var keyVault: KeyVault
        /// The sandbox's control endpoint.
        public var control: Control
    }

    let options: Options
    let logger: Logger

    /// A sandbox that runs with `options` once ``run(onReady:)`` is called.
    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    var caPath: String { options.dataDirectory + "/ca.pem" }
    var certificatePath: String { options.dataDirectory + "/tls.crt.pem" }
    var keyPath: String { options.dataDirectory + "/tls.key.pem" }

    /// Makes the sandbox CA and TLS certificate on first start. The CA key is thrown away once the
    /// TLS certificate is signed: nothing else is ever issued by it.
    func prepare() async throws {
        try FileManager.default.createDirectory(atPath: options.dataDirectory, withIntermediateDirectories: true)
        guard !FileManager.default.fileExists(atPath: certificatePath) else { return }
        let root = try await CertificateAuthority.makeRoot(
            name: "Keygate Sandbox CA", organization: "Keygate Sandbox", signer: try SoftwareSigner.generate(.p256))
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("sandbox") }, privateKey: .init(key),
            attributes: .init())
        var dns = ["localhost"]
        var ips = ["127.0.0.1", "::1"]
        for host in options.hosts {
            if host.contains(":") || host.split(separator: ".").allSatisfy({ UInt8($0) != nil }) {
                ips.append(host)
            } else {
                dns.append(host)
            }
        }
        let certificate = try await root.issue(
            csr: try CSRPolicy().check(try csr.derBytes), profile: .server,
            identity: .init(commonName: dns.last ?? "localhost", dnsNames: dns, ipAddresses: ips), revocation: nil,
            validity: 5 * 365 * 86_400)
        try write(root.chainPEM, to: caPath, mode: 0o644)
        try write(try certificate.pemString + root.chainPEM, to: certificatePath, mode: 0o644)
        try write(key.pemRepresentation, to: keyPath, mode: 0o600)
    }

    private func write(_ text: String, to path: String, mode: Int) throws {
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
    }

    /// The connection facts for a server on `port`.
    func connection(state: SandboxState, port: Int, mqttPort: Int?) -> Connection {
        let host = options.listenHost.contains(":") ? "[\(options.listenHost)]" : options.listenHost
        let base = "https://\(host):\(port)"
        let dps = state.dps
        let hub = state.hub
        let dpsPolicy = dps.policies.first { $0.name == "provisioningserviceowner" }!
        let hubPolicy = hub.policies.first { $0.name == "iothubowner" }!
        return Connection(
            caCertificate: caPath, baseURL: base,
            dps: .init(
                serviceConnectionString:
                    "HostName=\(host):\(port);SharedAccessKeyName=\(dpsPolicy.name);SharedAccessKey=\(dpsPolicy.primaryKey)",
                idScope: dps.idScope, deviceEndpoint: hub.hostName, deviceHTTPSURL: base, mqttPort: mqttPort),
            hub: .init(
                hostName: hub.hostName,
                registryConnectionString:
                    "HostName=\(host):\(port);SharedAccessKeyName=\(hubPolicy.name);SharedAccessKey=\(hubPolicy.primaryKey)",
                mqttPort: mqttPort),
            central: .init(appURL: base, apiToken: CentralAPIToken.make(central: state.central)),
            keyVault: .init(
                vaultURL: base + "/keyvault", tokenEndpoint: base + "/aad/\(state.tenantID)/oauth2/v2.0/token",
                tenantId: state.tenantID, clientId: state.clientID, clientSecret: state.clientSecret,
                scope: KeyVaultRoutes.scope),
            control: .init(
                faultsURL: base + "/sandbox/control/faults", inspectURL: base + "/sandbox/control/inspect",
                token: state.controlToken))
    }

    /// Runs until SIGTERM/SIGINT or cancellation; `onReady` gets the connection facts once listening.
    public func run(onReady: @escaping @Sendable (Connection) -> Void = { _ in }) async throws {
        try await prepare()
        let store = try SandboxStore(path: options.dataDirectory + "/state.json", persist: options.persistState)
        let hubHost = options.hosts.first ?? options.listenHost
        if await store.state.hub.hostName != hubHost {
            try await store.update { $0.hub.hostName = hubHost }
        }
        let state = await store.state
        // Devices present client certificates (DPS and hub device APIs); other callers need none.
        let tls = try TLSListener.configuration(chainFile: certificatePath, keyFile: keyPath)
        let portBox = PortBox()
        let injector = FaultInjector()
        if let faults = options.faults {
            try injector.apply(
                faults, to: options.faultSurfaces.isEmpty ? SandboxSurface.allCases : options.faultSurfaces)
        }
        let router = Router(context: SandboxContext.self)
        router.add(middleware: FaultMiddleware(injector: injector, idScope: state.dps.idScope))
        let hub = HubRegistry(store: store)
        let registrar = DPSRegistrar(store: store, hub: hub)
        ControlRoutes(injector: injector, token: state.controlToken, store: store, hub: hub).register(on: router)
        KeyVaultRoutes(store: store, tokens: AADTokens(state: state), baseURLProvider: portBox).register(on: router)
        DPSServiceRoutes(store: store, hub: hub).register(on: router)
        DPSDeviceRoutes(store: store, registrar: registrar).register(on: router)
        HubRoutes(store: store, registry: hub).register(on: router)
        CentralRoutes(store: store, hub: hub, tokens: AADTokens(state: state)).register(on: router)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var boundMQTTPort: Int?
        if let port = options.mqttPort {
            let mqtt = try await MQTTServer.start(
                host: options.listenHost, port: port, tls: tls, registrar: registrar, hub: hub, injector: injector,
                store: store, logger: logger)
            boundMQTTPort = mqtt.port
            services.append(.init(service: mqtt))
        }
        let directory = options.dataDirectory
        let mqttPort = boundMQTTPort
        let app = Application(
            router: router,
            server: try TLSListener.http1(tls),
            configuration: .init(
                address: .hostname(options.listenHost, port: options.httpsPort), serverName: "keygate-sandbox"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let connection = connection(state: state, port: port, mqttPort: mqttPort)
                portBox.set(connection.baseURL)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                if let data = try? encoder.encode(connection) {
                    _ = FileManager.default.createFile(
                        atPath: directory + "/connection.json", contents: data, attributes: [.posixPermissions: 0o600])
                }
                onReady(connection)
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: services + [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            ))
        try await group.run()
    }
}

/// The base URL, known once the listener is bound (port 0 picks one).
final class PortBox: Sendable {
    private let value = Mutex<String>("")
    func set(_ url: String) { value.withLock { $0 = url } }
    var baseURL: String { value.withLock { $0 } }
}
