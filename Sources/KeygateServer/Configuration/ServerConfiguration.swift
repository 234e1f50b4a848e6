import Foundation
public import KeygatePKI

/// `keygate.json` in the data folder: everything `keygate serve` needs besides secrets.
public struct ServerConfiguration: Codable, Sendable, Hashable {
    /// An address and port to listen on.
    public struct Listener: Codable, Sendable, Hashable {
        /// The address to bind (`127.0.0.1`, `0.0.0.0`, a host name).
        public var host: String
        /// The TCP port.
        public var port: Int
        /// Creates a listener.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// A CA certificate (root or issuing) and where its key is kept.
    public struct CAEntry: Codable, Sendable, Hashable {
        /// The certificate, relative to the data folder.
        public var certificate: String
        /// `software` (an encrypted PKCS #8 file), `pkcs11` or `azure-key-vault`.
        public var keyStore: String
        /// For `software`: the encrypted key file, relative to the data folder.
        public var keyFile: String?
        /// The CA key's algorithm.
        public var keyAlgorithm: KeyAlgorithm
        /// For `azure-key-vault`: where the key is and how to reach it.
        public var azureKeyVault: AzureKeyVaultEntry?
        /// For `pkcs11`: the module, token and key label.
        public var pkcs11: PKCS11Entry?

        /// Where the key lives, in words (`keygate ca show`).
        public var locationDescription: String {
            if let keyFile { return "encrypted PKCS#8 file \(keyFile)" }
            if let vault = azureKeyVault { return "Azure Key Vault key \(vault.keyID)" }
            if let hsm = pkcs11 { return "PKCS#11 token '\(hsm.tokenLabel)' (\(hsm.module)), key '\(hsm.keyLabel)'" }
            return keyStore
        }
    }

    /// A CA key in a PKCS #11 token. The PIN is never stored here: it comes from
    /// `KEYGATE_PKCS11_PIN` or the file named by `pinFile`.
    public struct PKCS11Entry: Codable, Sendable, Hashable {
        /// The path of the PKCS #11 module (shared library).
        public var module: String
        /// The label of the token that holds the key.
        public var tokenLabel: String
        /// The label of the key in the token.
        public var keyLabel: String
        /// A file whose first line is the user PIN; `nil`: only `KEYGATE_PKCS11_PIN`.
        public var pinFile: String?
    }

    /// A CA key in Azure Key Vault. The client secret is sealed with the CA passphrase.
    public struct AzureKeyVaultEntry: Codable, Sendable, Hashable {
        /// The Key Vault key's URL (its key identifier).
        public var keyID: String
        /// The Microsoft Entra (AAD) token endpoint for the client credentials.
        public var tokenEndpoint: String
        /// The application (client) ID that may use the key.
        public var clientID: String
        /// The client secret, sealed with ``SecretBox``.
        public var sealedClientSecret: String
        /// A PEM file to trust for the vault and token endpoint (the sandbox's CA); `nil`: system roots.
        public var caCertificate: String?
    }

    /// The version of this file's format (1).
    public var formatVersion: Int = 1
    /// The admin and device API (HTTPS).
    public var https: Listener
    /// CRL, OCSP and the CA chain (plain HTTP).
    public var http: Listener
    /// The base URL written into certificates for the CRL and OCSP (`http://host:port`).
    public var publicBaseURL: String
    /// How admin commands on this host reach the API (`https://127.0.0.1:8443`).
    public var adminURL: String
    /// The root CA.
    public var root: CAEntry
    /// The issuing CA that signs device and server certificates.
    public var issuing: CAEntry
    /// The HTTPS listener's certificate and (unencrypted, 0600) key.
    public var tlsCertificate: String
    /// The key file of the HTTPS listener, relative to the data folder.
    public var tlsKey: String
    /// The database: an SQLite file relative to the data folder (one node), or a PostgreSQL URL
    /// `postgres://USER@HOST:PORT/DATABASE[?sslmode=…]` that several nodes share. `KEYGATE_DATABASE_URL`
    /// overrides it. Never holds a password.
    public var database: String
    /// A file (relative to the data folder or absolute) holding the PostgreSQL password; `nil`:
    /// `PGPASSWORD`, else none (trust or certificate authentication).
    public var databasePasswordFile: String?
    /// How long a CRL is valid (`nextUpdate - thisUpdate`), in seconds.
    public var crlValiditySeconds: Int
    /// How long an OCSP answer is valid, in seconds.
    public var ocspValiditySeconds: Int
    /// Device API requests a second per client address (bursts of twice that); `nil`: 20; 0: no
    /// limit (a deployment whose devices all reach Keygate through one address, such as a simulator).
    public var deviceRequestsPerSecond: Double?
    /// Open connections per listener; `nil`: half the file-descriptor limit, at most 16,384.
    public var maxConnections: Int?
    /// Open connections per client address and listener; `nil`: 1,024 (raise it behind a proxy that
    /// does not pass addresses on).
    public var maxConnectionsPerAddress: Int?
    /// Seconds a connection may send nothing (an unfinished TLS handshake or request head included)
    /// before it is closed; `nil`: 60.
    public var idleTimeoutSeconds: Int?
    /// Whether `/metrics` needs an admin token (any role; read-only is enough); `nil` or false: open to
    /// whoever reaches the listener.
    public var metricsRequireToken: Bool?
    /// Where `/metrics` is also served on its own plain-HTTP listener (such as `127.0.0.1:9090`), for a
    /// scraper on a management network; `nil`: only on the two main listeners.
    public var metricsListen: String?
    /// Where the audit chain's signed checkpoints are appended (relative to the data folder or
    /// absolute; another volume keeps them apart from the database); `nil`: `audit/checkpoints.jsonl`.
    public var auditCheckpointFile: String?
    /// Seconds between audit checkpoints (one is also written at shutdown); `nil`: 60.
    public var auditCheckpointSeconds: Int?

    /// Creates a configuration; the optional limits keep their defaults (`nil`).
    public init(
        https: Listener, http: Listener, publicBaseURL: String, adminURL: String, root: CAEntry, issuing: CAEntry,
        tlsCertificate: String = "tls/server.crt.pem", tlsKey: String = "tls/server.key.pem",
        database: String = "keygate.sqlite", crlValiditySeconds: Int = 86_400, ocspValiditySeconds: Int = 3_600
    ) {
        self.https = https
        self.http = http
        self.publicBaseURL = publicBaseURL
        self.adminURL = adminURL
        self.root = root
        self.issuing = issuing
        self.tlsCertificate = tlsCertificate
        self.tlsKey = tlsKey
        self.database = database
        self.crlValiditySeconds = crlValiditySeconds
        self.ocspValiditySeconds = ocspValiditySeconds
    }
}
