public import Foundation
import KeygatePKI

/// Where a group's devices are enrolled in Azure: a DPS instance or an IoT Central app.
/// Secrets (connection strings, API tokens, client secrets) are kept sealed with the CA passphrase.
public struct Connector: Sendable, Hashable, Codable {
    /// The Azure service: a Device Provisioning Service (`dps`) or an IoT Central app (`iot-central`).
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case dps
        case iotCentral = "iot-central"
    }

    /// Settings that are not secret.
    public struct Settings: Sendable, Hashable, Codable {
        /// DPS: the service host (from the connection string); IoT Central: the app URL.
        public var endpoint: String
        /// The DPS ID scope devices register under (IoT Central: learned from a device's credentials).
        public var idScope: String?
        /// Where devices register (`global.azure-devices-provisioning.net` in Azure).
        public var globalEndpoint: String
        /// A PEM file trusted for this connector's TLS (the sandbox's CA); `nil`: the system's roots.
        public var caCertificate: String?
        /// The IoT Hub registry host when its connection string is given (quarantine disables identities there).
        public var hubHost: String?
        /// IoT Central with AAD: the token endpoint and client ID (the secret is sealed).
        public var tokenEndpoint: String?
        /// IoT Central with AAD: the application (client) ID; `nil` when an API token is used.
        public var clientID: String?
        /// Calls a minute to the IoT Hub registry (quarantine and retirement change hub identities);
        /// `nil`: Azure's published throttle for one S1 unit (100). Raise it for more units or S3.
        public var hubCallsPerMinute: Int?
        /// Calls a minute to the connector's service (the DPS service API, or the IoT Central app), for
        /// the whole deployment (nodes split it); `nil`: Azure's published throttle (DPS 1,000 service
        /// operations a minute, IoT Central 20 calls a second).
        public var maxCallsPerMinute: Int?

        /// Creates settings; `globalEndpoint` defaults to Azure's.
        public init(
            endpoint: String, idScope: String? = nil, globalEndpoint: String = Connector.azureGlobalEndpoint,
            caCertificate: String? = nil, hubHost: String? = nil, tokenEndpoint: String? = nil, clientID: String? = nil,
            hubCallsPerMinute: Int? = nil, maxCallsPerMinute: Int? = nil
        ) {
            self.hubCallsPerMinute = hubCallsPerMinute
            self.maxCallsPerMinute = maxCallsPerMinute
            self.endpoint = endpoint
            self.idScope = idScope
            self.globalEndpoint = globalEndpoint
            self.caCertificate = caCertificate
            self.hubHost = hubHost
            self.tokenEndpoint = tokenEndpoint
            self.clientID = clientID
        }
    }

    /// Azure's DPS device endpoint, the default ``Settings/globalEndpoint``.
    public static let azureGlobalEndpoint = "global.azure-devices-provisioning.net"

    /// The name groups refer to in ``Group/Policy/connector``; see ``validate(name:)``.
    public var name: String
    /// Which Azure service the connector talks to.
    public var kind: Kind
    /// Endpoints and IDs; the dispatcher updates ``Settings/idScope`` once IoT Central reveals it.
    public var settings: Settings
    /// Secrets by name (`connectionString`, `hubConnectionString`, `apiToken`, `clientSecret`), each sealed.
    public var sealedSecrets: [String: String]
    /// When the connector was added.
    public var createdAt: Date

    /// Creates a connector; `sealedSecrets` must already be sealed.
    public init(name: String, kind: Kind, settings: Settings, sealedSecrets: [String: String], createdAt: Date = Date())
    {
        self.name = name
        self.kind = kind
        self.settings = settings
        self.sealedSecrets = sealedSecrets
        self.createdAt = createdAt
    }

    /// Names are what groups refer to: letters, digits, `-` and `_`, up to 64.
    public static func validate(name: String) throws {
        guard (1...64).contains(name.count),
            name.unicodeScalars.allSatisfy({
                ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "-" || $0 == "_"
            })
        else {
            throw KeygateError(.invalidConnector, "a connector name is 1 to 64 letters, digits, '-' or '_'")
        }
    }
}

/// A change to make in Azure, written in the same transaction as the change in Keygate that needs
/// it and delivered by the dispatcher until it succeeds (or dead-letters).
public struct OutboxItem: Sendable, Hashable, Codable {
    /// The change to make in Azure.
    public enum Action: String, Sendable, Codable, CaseIterable {
        /// Create or replace the device's enrollment with its current certificate(s), enabled.
        case enroll
        /// Disable the enrollment and the hub identity (quarantine).
        case disable
        /// Enable them again (re-authorization).
        case enable
        /// Delete the enrollment and the hub identity (retirement).
        case delete
    }

    /// Where an item is in delivery: `pending` until it succeeds (`delivered`) or is given up (`deadLetter`).
    public enum State: String, Sendable, Codable, CaseIterable {
        case pending
        case delivered
        case deadLetter
    }

    /// The row ID the store assigns (increasing); 0 before the item is queued.
    public var id: Int64
    /// The name of the ``Connector`` that delivers the change.
    public var connector: String
    /// The device the change is for; a device's items are delivered one at a time, oldest first.
    public var deviceID: String
    /// What to do in Azure.
    public var action: Action
    /// The certificate (PEM) to enrol, and the previous one during a renewal.
    public var certificate: String?
    /// During a renewal, the certificate (PEM) being replaced, kept as the enrollment's secondary.
    public var previousCertificate: String?
    /// Delivery state; a dead letter waits for an operator to retry it.
    public var state: State
    /// Failed deliveries so far; reset to 0 when a dead letter is retried.
    public var attempts: Int
    /// When the dispatcher may try next (pushed back after each failure).
    public var nextAttemptAt: Date
    /// The last delivery error (at most 1,000 characters kept); cleared on delivery.
    public var lastError: String?
    /// When the item was queued.
    public var createdAt: Date
    /// When its state or attempt count last changed.
    public var updatedAt: Date
    /// Whether another node held it and its lease ran out (that node died mid-delivery): the change
    /// may have reached Azure already, so the deliverer looks before it writes again.
    public var resumed = false

    /// Creates an item; the store ignores `id`, `state`, `attempts` and `lastError` when queuing it.
    public init(
        id: Int64 = 0, connector: String, deviceID: String, action: Action, certificate: String? = nil,
        previousCertificate: String? = nil, state: State = .pending, attempts: Int = 0, nextAttemptAt: Date = Date(),
        lastError: String? = nil, createdAt: Date = Date(), updatedAt: Date = Date()
    ) {
        self.id = id
        self.connector = connector
        self.deviceID = deviceID
        self.action = action
        self.certificate = certificate
        self.previousCertificate = previousCertificate
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
