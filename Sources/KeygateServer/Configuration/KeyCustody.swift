import Foundation
import KeygateAzure
import KeygatePKI
import X509

/// Turns a CA entry of the configuration into a signer: for now the software key store
/// (an encrypted PKCS #8 file); PKCS #11 and Azure Key Vault plug in here.
struct KeyCustody {
    let directory: DataDirectory

    func signer(for entry: ServerConfiguration.CAEntry, passphrase: String?) async throws -> any CertificateSigner {
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
        default:
            throw KeygateError(.malformedInput, "unknown key store '\(entry.keyStore)'")
        }
    }
}
