import Foundation
import KeygateAzure
import KeygatePKCS11
import KeygatePKI
import X509

/// Turns a CA entry of the configuration into a signer: an encrypted PKCS #8 file (`software`),
/// a key in a PKCS #11 token (`pkcs11`) or an Azure Key Vault key (`azure-key-vault`).
struct KeyCustody: Sendable {
    let directory: DataDirectory

    /// Resolves key files relative to `directory`.
    public init(directory: DataDirectory) {
        self.directory = directory
    }

    /// Opens the signer for `entry`'s key store. Throws `passphraseMissing` when an encrypted key or sealed
    /// secret needs the passphrase, `malformedInput` for an unknown key store or missing settings, and
    /// `pkcs11PinMissing` when a PKCS #11 token has no PIN.
    public func signer(for entry: ServerConfiguration.CAEntry, passphrase: String?) async throws
        -> any CertificateSigner
    {
        switch entry.keyStore {
        case "software":
            guard let keyFile = entry.keyFile else {
                throw KeygateError(.malformedInput, "the software key store needs keyFile in keygate.json")
            }
            guard let passphrase else {
                throw KeygateError(
                    .passphraseMissing,
                    "the CA key is encrypted; give the passphrase with --passphrase-file or \(PassphraseSource.environmentVariable)"
                )
            }
            let pkcs8 = try EncryptedPrivateKey.decrypt(pem: try directory.read(keyFile), passphrase: passphrase)
            return try SoftwareSigner(
                privateKey: try Certificate.PrivateKey(derBytes: pkcs8),
                location: .encryptedFile(path: directory.path(keyFile)))
        case "azure-key-vault":
            guard let vault = entry.azureKeyVault else {
                throw KeygateError(.malformedInput, "the azure-key-vault key store needs azureKeyVault in keygate.json")
            }
            guard let passphrase else {
                throw KeygateError(.passphraseMissing, "the Key Vault client secret is sealed with the CA passphrase")
            }
            let http = AzureHTTPClients.client(trusting: vault.caCertificate)
            let tokens = AADTokenProvider(
                tokenEndpoint: vault.tokenEndpoint, clientID: vault.clientID,
                clientSecret: try SecretBox(passphrase: passphrase).open(vault.sealedClientSecret),
                scope: AzureKeyVaultSigner.scope, http: http)
            return try await AzureKeyVaultSigner.existing(keyURL: vault.keyID, tokens: tokens, http: http)
        case "pkcs11":
            guard let hsm = entry.pkcs11 else {
                throw KeygateError(.malformedInput, "the pkcs11 key store needs pkcs11 in keygate.json")
            }
            let token = PKCS11Token(
                module: try PKCS11Module.load(hsm.module), label: hsm.tokenLabel,
                pin: try PKCS11PIN.resolve(file: hsm.pinFile))
            return try await PKCS11Signer.existing(token: token, label: hsm.keyLabel)
        default:
            throw KeygateError(.malformedInput, "unknown key store '\(entry.keyStore)'")
        }
    }
}

/// Where the PKCS #11 user PIN comes from: `KEYGATE_PKCS11_PIN`, else a file (first line).
public enum PKCS11PIN {
    /// The environment variable that can hold the PIN.
    public static let environmentVariable = "KEYGATE_PKCS11_PIN"

    /// The PIN from `KEYGATE_PKCS11_PIN`, else the trimmed content of `file`; throws `pkcs11PinMissing` when
    /// neither gives one.
    public static func resolve(file: String?) throws -> String {
        if let pin = ProcessInfo.processInfo.environment[environmentVariable], !pin.isEmpty { return pin }
        guard let file else {
            throw KeygateError(
                .pkcs11PinMissing, "the PKCS#11 token needs its PIN: set \(environmentVariable) or give a PIN file")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw KeygateError(.pkcs11PinMissing, "cannot read the PKCS#11 PIN file \(file)")
        }
        let pin = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !pin.isEmpty else { throw KeygateError(.pkcs11PinMissing, "the PKCS#11 PIN file \(file) is empty") }
        return pin
    }
}
