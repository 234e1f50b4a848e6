import ArgumentParser
import Foundation
import KeygatePKI
import KeygateServer
import X509

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a data folder: root and issuing CA, TLS certificate, database, first admin token.",
        discussion: """
            CA keys are written as encrypted PKCS #8 (PBES2, AES-256-CBC), readable with
            `openssl pkey -passin`. The passphrase comes from --passphrase-file or KEYGATE_PASSPHRASE;
            with neither, a random one is generated into DIR/passphrase (0600).
            With --root-key-store/--issuing-key-store pkcs11 the key is generated inside the token
            (sensitive, not extractable; an existing key with the label is used as is); with
            azure-key-vault an EC-HSM P-256 key is created in the vault. No key file is written for them.
            The first admin token is printed once and kept in DIR/admin-token (0600).
            With --database postgres://USER@HOST:PORT/DATABASE the deployment keeps its data in PostgreSQL
            (the database must exist and be empty); more nodes then join with `keygate node join`.
            """)

    @Option(name: .long, help: "The data folder to create.")
    var dataDir: String

    @Option(name: .long, help: "CA key algorithm: ecdsa-p256 (default), ecdsa-p384, rsa-3072, ed25519.")
    var keyAlgorithm: String = "ecdsa-p256"

    @Option(
        name: .long, parsing: .singleValue, help: "Another host name or IP for the server certificate (repeatable).")
    var host: [String] = []

    @Option(name: .long, help: "Organization name in the CA certificates.")
    var organization: String = "Keygate"

    @Option(name: .long, help: "File holding the CA key passphrase (else KEYGATE_PASSPHRASE, else generated).")
    var passphraseFile: String?

    @Option(
        name: .long,
        help: """
            PostgreSQL for several nodes: postgres://USER@HOST:PORT/DATABASE[?sslmode=disable|prefer|require|verify-full]             (else KEYGATE_DATABASE_URL; without either, SQLite in the data folder).
            """)
    var database: String?

    @Option(name: .long, help: "File holding the PostgreSQL password (else PGPASSWORD); recorded by path, for serve.")
    var databasePasswordFile: String?

    @Option(name: .long, help: "Address both listeners bind to.")
    var listen: String = "127.0.0.1"

    @Option(name: .long, help: "HTTPS port (admin and device API).")
    var httpsPort: Int = 8443

    @Option(name: .long, help: "Plain-HTTP port (CRL, OCSP, CA chain).")
    var httpPort: Int = 8080

    @Option(
        name: .long,
        help: """
            Device API requests a second per client address (bursts of twice that; default 20). 0 turns the \
            limit off, for devices that all reach Keygate through one address (a simulator; behind a proxy, \
            set a limit that fits the fleet).
            """)
    var deviceRateLimit: Double?

    @Option(name: .long, help: "Base URL written into certificates for CRL and OCSP (default http://HOST:HTTP-PORT).")
    var publicUrl: String?

    @Option(
        name: .long, help: "Where the root CA key lives: software (encrypted file, default), pkcs11 or azure-key-vault."
    )
    var rootKeyStore: String = "software"

    @Option(name: .long, help: "Where the issuing CA key lives: software (default), pkcs11 or azure-key-vault.")
    var issuingKeyStore: String = "software"

    @Option(name: .long, help: "The root key's label in the token or name in the vault (default keygate-root-ca).")
    var rootKeyLabel: String?

    @Option(name: .long, help: "The issuing key's label or vault name (default keygate-issuing-ca).")
    var issuingKeyLabel: String?

    @Option(name: .long, help: "pkcs11: the module to load.")
    var pkcs11Module: String = "/usr/lib/softhsm/libsofthsm2.so"

    @Option(name: .long, help: "pkcs11: the token's label.")
    var pkcs11Token: String?

    @Option(
        name: .long,
        help: "pkcs11: a file holding the user PIN (else KEYGATE_PKCS11_PIN); recorded so serve finds it.")
    var pkcs11PinFile: String?

    @Option(name: .long, help: "azure-key-vault: the vault URL, e.g. https://myvault.vault.azure.net.")
    var vaultUrl: String?

    @Option(
        name: .long,
        help: "azure-key-vault: the AAD token endpoint (https://login.microsoftonline.com/TENANT/oauth2/v2.0/token).")
    var vaultTokenEndpoint: String?

    @Option(name: .long, help: "azure-key-vault: the application (client) ID.")
    var vaultClientId: String?

    @Option(name: .long, help: "azure-key-vault: a file holding the client secret (else KEYGATE_VAULT_CLIENT_SECRET).")
    var vaultClientSecretFile: String?

    @Option(
        name: .long, help: "azure-key-vault: a PEM CA to trust for the vault (the sandbox's); default: system roots.")
    var vaultCaCert: String?

    @Option(name: .long, help: "azure-key-vault: the issuing key's name (same as --issuing-key-label).")
    var vaultKeyName: String?

    func validate() throws {
        for (flag, value) in [("--root-key-store", rootKeyStore), ("--issuing-key-store", issuingKeyStore)]
        where !["software", "pkcs11", "azure-key-vault"].contains(value) {
            throw ValidationError("\(flag) is software, pkcs11 or azure-key-vault, not '\(value)'")
        }
    }

    /// The key store settings for one CA from the flags.
    private func keyStore(_ name: String, label: String?) throws -> KeygateInitializer.KeyStoreChoice {
        switch name {
        case "pkcs11":
            guard let pkcs11Token else { throw ValidationError("pkcs11 needs --pkcs11-token (the token's label)") }
            let pin: String
            do {
                pin = try PKCS11PIN.resolve(file: pkcs11PinFile)
            } catch let error as KeygateError {
                throw ValidationError(error.message + " (--pkcs11-pin-file)")
            }
            return .pkcs11(
                .init(module: pkcs11Module, tokenLabel: pkcs11Token, keyLabel: label, pin: pin, pinFile: pkcs11PinFile))
        case "azure-key-vault":
            guard let vaultUrl, let vaultTokenEndpoint, let vaultClientId else {
                throw ValidationError("azure-key-vault needs --vault-url, --vault-token-endpoint and --vault-client-id")
            }
            var secret = ProcessInfo.processInfo.environment["KEYGATE_VAULT_CLIENT_SECRET"]
            if let vaultClientSecretFile {
                guard let data = FileManager.default.contents(atPath: vaultClientSecretFile) else {
                    throw ValidationError("cannot read \(vaultClientSecretFile)")
                }
                secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let secret, !secret.isEmpty else {
                throw ValidationError("azure-key-vault needs --vault-client-secret-file or KEYGATE_VAULT_CLIENT_SECRET")
            }
            return .azureKeyVault(
                .init(
                    vaultURL: vaultUrl, tokenEndpoint: vaultTokenEndpoint, clientID: vaultClientId,
                    clientSecret: secret, caCertificate: vaultCaCert, keyName: label))
        default:
            return .software
        }
    }

    func run() async throws {
        guard let algorithm = KeyAlgorithm(flag: keyAlgorithm) else {
            throw ValidationError(
                "unknown key algorithm '\(keyAlgorithm)'; use ecdsa-p256, ecdsa-p384, rsa-3072 or ed25519")
        }
        var options = KeygateInitializer.Options()
        options.keyAlgorithm = algorithm
        options.hosts = host
        options.organization = organization
        options.listenHost = listen
        options.httpsPort = httpsPort
        if let deviceRateLimit {
            guard deviceRateLimit >= 0 else { throw ValidationError("--device-rate-limit must be 0 or more") }
            options.deviceRequestsPerSecond = deviceRateLimit
        }
        options.httpPort = httpPort
        options.publicBaseURL = publicUrl
        options.passphrase = try PassphraseSource.resolve(file: passphraseFile, dataDirectory: nil)
        options.rootKeyStore = try keyStore(rootKeyStore, label: rootKeyLabel)
        options.issuingKeyStore = try keyStore(issuingKeyStore, label: issuingKeyLabel ?? vaultKeyName)
        options.database = database ?? ProcessInfo.processInfo.environment["KEYGATE_DATABASE_URL"].flatMap {
            $0.isEmpty ? nil : $0
        }
        if let file = databasePasswordFile {
            options.databasePasswordFile = URL(fileURLWithPath: file).standardizedFileURL.path
        }
        let directory = DataDirectory(path: dataDir)
        let result = try await runReportingErrors {
            try await KeygateInitializer(directory: directory, options: options).run()
        }
        print("Created Keygate data folder \(directory.url.path)")
        print("  root CA     \(result.root.subject)  (\(algorithm.rawValue))")
        print("  issuing CA  \(result.issuing.subject)")
        print("  root key    \(result.configuration.root.locationDescription)")
        print("  issuing key \(result.configuration.issuing.locationDescription)")
        print("  chain       \(directory.path(DataDirectory.chainFile))")
        print("  database    \(result.configuration.database)")
        print("  HTTPS       \(result.configuration.adminURL)   HTTP \(result.configuration.publicBaseURL)")
        if let file = result.generatedPassphraseFile {
            print("  passphrase  generated into \(file) (0600); keep it safe or move it out and use KEYGATE_PASSPHRASE")
        }
        print("")
        print("Admin token (shown once; also in \(directory.path(DataDirectory.adminTokenFile))):")
        print("  \(result.adminToken)")
        print("")
        print("Next: keygate serve --data-dir \(dataDir)")
    }
}
