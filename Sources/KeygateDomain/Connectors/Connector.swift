public import Foundation
import KeygatePKI

/// Where a group's devices are enrolled in Azure: a DPS instance or an IoT Central app.
/// Secrets (connection strings, API tokens, client secrets) are kept sealed with the CA passphrase.
public struct Connector: Sendable, Hashable, Codable {
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
        public var clientID: String?

        public init(
            endpoint: String, idScope: String? = nil, globalEndpoint: String = Connector.azureGlobalEndpoint,
            caCertificate: String? = nil, hubHost: String? = nil, tokenEndpoint: String? = nil, clientID: String? = nil
        ) {
            self.endpoint = endpoint
            self.idScope = idScope
            self.globalEndpoint = globalEndpoint
            self.caCertificate = caCertificate
            self.hubHost = hubHost
            self.tokenEndpoint = tokenEndpoint
            self.clientID = clientID
        }
    }

    public static let azureGlobalEndpoint = "global.azure-devices-provisioning.net"

    public var name: String
    public var kind: Kind
    public var settings: Settings
    /// Secrets by name (`connectionString`, `hubConnectionString`, `apiToken`, `clientSecret`), each sealed.
    public var sealedSecrets: [String: String]
    public var createdAt: Date

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

    public enum State: String, Sendable, Codable, CaseIterable {
        case pending
        case delivered
        case deadLetter
    }

    public var id: Int64
    public var connector: String
    public var deviceID: String
    public var action: Action
    /// The certificate (PEM) to enrol, and the previous one during a renewal.
    public var certificate: String?
    public var previousCertificate: String?
    public var state: State
    public var attempts: Int
    public var nextAttemptAt: Date
    public var lastError: String?
    public var createdAt: Date
    public var updatedAt: Date

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
