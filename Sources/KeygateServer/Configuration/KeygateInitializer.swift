import Crypto
import Foundation
import KeygateAzure
import KeygateDomain
import KeygatePKCS11
public import KeygatePKI
import KeygateStore
public import X509

/// Creates a data folder: root and issuing CA, encrypted keys, the server's TLS certificate,
/// the database and the first admin token (`keygate init`).
public struct KeygateInitializer: Sendable {
    /// What `init` creates; every field has a default.
    public struct Options: Sendable {
        /// The algorithm of both CA keys in the software key store (PKCS #11 keys too, when generated).
        public var keyAlgorithm: KeyAlgorithm = .p256
        /// Extra names for the server's TLS certificate, besides 127.0.0.1 and ::1.
        public var hosts: [String] = []
        /// The organization name in both CA subjects.
        public var organization: String = "Keygate"
        /// The root CA's common name.
        public var rootName: String = "Keygate Root CA"
        /// The issuing CA's common name.
        public var issuingName: String = "Keygate Issuing CA"
        /// The address both listeners bind.
        public var listenHost: String = "127.0.0.1"
        /// The port of the admin and device API (HTTPS).
        public var httpsPort: Int = 8443
        /// The port of CRL, OCSP and the CA chain (plain HTTP).
        public var httpPort: Int = 8080
        /// The base URL put into certificates for CRL and OCSP; defaults to `http://<first host or 127.0.0.1>:<httpPort>`.
        public var publicBaseURL: String?
        /// `nil`: generate one into the data folder.
        public var passphrase: String?
        /// PBKDF2 iterations for the encrypted CA key files.
        public var kdfIterations: Int = EncryptedPrivateKey.defaultIterations
        /// Where the root CA's key is kept.
        public var rootKeyStore: KeyStoreChoice = .software
        /// Where the issuing CA's key is kept.
        public var issuingKeyStore: KeyStoreChoice = .software
        /// Device API requests a second per client address; `nil`: the default (20); 0: no limit.
        public var deviceRequestsPerSecond: Double?
        /// A PostgreSQL URL for the deployment's database (several nodes share it); `nil`: SQLite in the folder.
        public var database: String?
        /// A file holding the PostgreSQL password (stored in the configuration by path, never the password).
        public var databasePasswordFile: String?

        /// Options with every default.
        public init() {}
    }

    /// Where a CA key is generated and kept.
    public enum KeyStoreChoice: Sendable {
        /// An encrypted PKCS #8 file in the data folder.
        case software
        /// A PKCS #11 token (EC P-256 or P-384).
        case pkcs11(PKCS11Settings)
        /// Azure Key Vault (`EC-HSM`, always P-256).
        case azureKeyVault(AzureKeyVaultSettings)
    }

    /// How `init` reaches a PKCS #11 token for a CA key.
    public struct PKCS11Settings: Sendable {
        /// The path of the PKCS #11 module (shared library).
        public var module: String
        /// The label of the token to use.
        public var tokenLabel: String
        /// `nil`: `keygate-root-ca` or `keygate-issuing-ca`. An existing key with this label is used as is.
        public var keyLabel: String?
        /// The user PIN, used during `init` only (never written to the data folder).
        public var pin: String
        /// Recorded in keygate.json so `serve` finds the PIN (unless `KEYGATE_PKCS11_PIN` is set).
        public var pinFile: String?

        /// Creates PKCS #11 settings.
        public init(module: String, tokenLabel: String, keyLabel: String? = nil, pin: String, pinFile: String? = nil) {
            self.module = module
            self.tokenLabel = tokenLabel
            self.keyLabel = keyLabel
            self.pin = pin
            self.pinFile = pinFile
        }
    }

    /// How `init` reaches Azure Key Vault for a CA key.
    public struct AzureKeyVaultSettings: Sendable {
        /// The vault's URL (`https://<name>.vault.azure.net`).
        public var vaultURL: String
        /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, or the sandbox's.
        public var tokenEndpoint: String
        /// The application (client) ID to authenticate as.
        public var clientID: String
        /// The client secret; `init` stores it sealed with the CA passphrase.
        public var clientSecret: String
        /// A PEM file to trust for the vault and token endpoint (the sandbox's CA); `nil`: system roots.
        public var caCertificate: String?
        /// `nil`: `keygate-root-ca` or `keygate-issuing-ca`.
        public var keyName: String?

        /// Creates Key Vault settings.
        public init(
            vaultURL: String, tokenEndpoint: String, clientID: String, clientSecret: String,
            caCertificate: String? = nil, keyName: String? = nil
        ) {
            self.vaultURL = vaultURL
            self.tokenEndpoint = tokenEndpoint
            self.clientID = clientID
            self.clientSecret = clientSecret
            self.caCertificate = caCertificate
            self.keyName = keyName
        }
    }

    /// What `init` made.
    public struct Result: Sendable {
        /// The configuration written to `keygate.json`.
        public var configuration: ServerConfiguration
        /// The first admin token's text (also written to `admin-token`, 0600).
        public var adminToken: String
        /// Set when the passphrase was generated: the file it was written to.
        public var generatedPassphraseFile: String?
        /// The root CA certificate.
        public var root: Certificate
        /// The issuing CA certificate.
        public var issuing: Certificate
    }

    /// The data folder to create.
    public let directory: DataDirectory
    /// What to create.
    public let options: Options

    /// Prepares an initializer; nothing is written until ``run()``.
    public init(directory: DataDirectory, options: Options) {
        self.directory = directory
        self.options = options
    }

    /// Creates the folder, both CA keys and certificates, the TLS certificate, the database and the first admin
    /// token (audited as `adminToken.created`). Throws `dataDirectoryExists` when the folder already holds a
    /// `keygate.json` and `malformedInput` for a port out of range.
    public func run() async throws -> Result {
        guard !directory.exists else {
            throw KeygateError(.dataDirectoryExists, "\(directory.url.path) already holds a Keygate data folder")
        }
        try validatePorts()
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.url.path)

        var generatedPassphraseFile: String?
        let passphrase: String
        if let given = options.passphrase {
            passphrase = given
        } else {
            passphrase = Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
            try directory.write(Data((passphrase + "\n").utf8), to: DataDirectory.passphraseFile, mode: 0o600)
            generatedPassphraseFile = directory.path(DataDirectory.passphraseFile)
        }

        let (rootSigner, rootEntry) = try await makeKey(
            options.rootKeyStore, role: "root", certificate: "ca/root.crt.pem", passphrase: passphrase)
        let root = try await CertificateAuthority.makeRoot(
            name: options.rootName, organization: options.organization, signer: rootSigner)
        let (issuingSigner, issuingEntry) = try await makeKey(
            options.issuingKeyStore, role: "issuing", certificate: "ca/issuing.crt.pem", passphrase: passphrase)
        let issuing = try await root.makeSubordinate(
            name: options.issuingName, organization: options.organization, signer: issuingSigner)
        try directory.write(Data(try root.certificate.pemString.utf8), to: rootEntry.certificate, mode: 0o644)
        try directory.write(Data(try issuing.certificate.pemString.utf8), to: issuingEntry.certificate, mode: 0o644)
        try directory.write(Data(issuing.chainPEM.utf8), to: DataDirectory.chainFile, mode: 0o644)

        let firstHost = options.hosts.first ?? options.listenHost
        var configuration = ServerConfiguration(
            https: .init(host: options.listenHost, port: options.httpsPort),
            http: .init(host: options.listenHost, port: options.httpPort),
            publicBaseURL: options.publicBaseURL ?? "http://\(Self.urlHost(firstHost)):\(options.httpPort)",
            adminURL: "https://\(Self.urlHost(options.hosts.first ?? "127.0.0.1")):\(options.httpsPort)",
            root: rootEntry, issuing: issuingEntry)
        configuration.deviceRequestsPerSecond = options.deviceRequestsPerSecond
        if let database = options.database {
            configuration.database = try DatabaseLocation(database).description
            configuration.databasePasswordFile = options.databasePasswordFile
        }

        let store = try await DatabaseStore.open(directory.databaseLocation(configuration))
        defer { Task { await store.close() } }
        // A PostgreSQL database that already holds a deployment is joined, not initialised again.
        if try await store.auditHead().sequence > 0 {
            throw KeygateError(
                .databaseHoldsDeployment,
                "the database \(configuration.database) already holds a Keygate deployment; "
                    + "add a node with `keygate node join` instead")
        }
        // The audit chain is keyed from its first entry; the key is sealed like the CA keys, outside the database.
        store.useAuditKey(
            try AuditAnchor.create(directory: directory, secrets: SecretBox(passphrase: passphrase), keyedFrom: 1))
        _ = try await store.appendAudit(AuditAnchor.keyedEvent(from: 1))
        _ = try await store.appendAudit(
            .init(
                actor: "system", action: "ca.created", subject: issuing.certificate.subject.description,
                details: [
                    "root": root.certificate.subject.description, "keyAlgorithm": options.keyAlgorithm.rawValue,
                    "rootKeyStore": rootEntry.keyStore, "issuingKeyStore": issuingEntry.keyStore,
                ]))
        try await ServerTLSIdentity(directory: directory, configuration: configuration)
            .issue(authority: issuing, hosts: options.hosts, store: store)

        let token = AdminTokenSecret.generate()
        try await store.addAdminToken(
            AdminToken(name: "initial", hash: AdminTokenSecret.hash(token)),
            audit: .init(actor: "system", action: "adminToken.created", subject: "initial"))
        try directory.write(Data((token + "\n").utf8), to: DataDirectory.adminTokenFile, mode: 0o600)
        try directory.saveConfiguration(configuration)

        return Result(
            configuration: configuration, adminToken: token, generatedPassphraseFile: generatedPassphraseFile,
            root: root.certificate, issuing: issuing.certificate)
    }

    /// Generates (or, in a token, finds) one CA key where the options say, and its configuration entry.
    private func makeKey(_ store: KeyStoreChoice, role: String, certificate: String, passphrase: String) async throws
        -> (any CertificateSigner, ServerConfiguration.CAEntry)
    {
        let defaultName = "keygate-\(role)-ca"
        switch store {
        case .software:
            let signer = try SoftwareSigner.generate(options.keyAlgorithm)
            let entry = ServerConfiguration.CAEntry(
                certificate: certificate, keyStore: "software", keyFile: "ca/\(role).key.pem",
                keyAlgorithm: options.keyAlgorithm)
            try writeEncryptedKey(signer, to: "ca/\(role).key.pem", passphrase: passphrase)
            return (signer, entry)
        case .pkcs11(let hsm):
            let token = PKCS11Token(module: try PKCS11Module.load(hsm.module), label: hsm.tokenLabel, pin: hsm.pin)
            let label = hsm.keyLabel ?? defaultName
            let signer: PKCS11Signer
            do {
                signer = try await PKCS11Signer.existing(token: token, label: label)
            } catch let error as KeygateError where error.code == .pkcs11KeyNotFound {
                signer = try await PKCS11Signer.generate(token: token, label: label, algorithm: options.keyAlgorithm)
            }
            let entry = ServerConfiguration.CAEntry(
                certificate: certificate, keyStore: "pkcs11", keyFile: nil, keyAlgorithm: signer.algorithm,
                pkcs11: .init(
                    module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: label,
                    pinFile: hsm.pinFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }))
            return (signer, entry)
        case .azureKeyVault(let vault):
            let http = AzureHTTPClients.client(trusting: vault.caCertificate)
            let tokens = AADTokenProvider(
                tokenEndpoint: vault.tokenEndpoint, clientID: vault.clientID, clientSecret: vault.clientSecret,
                scope: AzureKeyVaultSigner.scope, http: http)
            let signer = try await AzureKeyVaultSigner.create(
                vaultURL: vault.vaultURL, name: vault.keyName ?? defaultName, tokens: tokens, http: http)
            let entry = ServerConfiguration.CAEntry(
                certificate: certificate, keyStore: "azure-key-vault", keyFile: nil, keyAlgorithm: .p256,
                azureKeyVault: .init(
                    keyID: signer.keyID, tokenEndpoint: vault.tokenEndpoint, clientID: vault.clientID,
                    sealedClientSecret: try SecretBox(passphrase: passphrase).seal(vault.clientSecret),
                    caCertificate: vault.caCertificate))
            return (signer, entry)
        }
    }

    private func writeEncryptedKey(_ signer: SoftwareSigner, to file: String, passphrase: String) throws {
        let pem = try EncryptedPrivateKey.encrypt(
            pkcs8: try signer.privateKey.pkcs8DER(), passphrase: passphrase, iterations: options.kdfIterations)
        try directory.write(Data(pem.utf8), to: file, mode: 0o600)
    }

    private func validatePorts() throws {
        for port in [options.httpsPort, options.httpPort] where !(0...65535).contains(port) {
            throw KeygateError(.malformedInput, "port \(port) is out of range")
        }
    }

    /// Brackets IPv6 literals for use in URLs.
    static func urlHost(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }
}
