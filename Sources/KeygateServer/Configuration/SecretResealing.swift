import Foundation
import KeygateDomain
import KeygateStore
import Logging

/// Seals again, as v2 (PBKDF2), the secrets an older Keygate sealed as v1 (HKDF): group keys and
/// connector credentials in the database, Key Vault client secrets in `keygate.json`. Runs when
/// the server starts with the passphrase; each change is audited (`secrets.resealed`), the values
/// themselves do not change.
enum SecretResealing {
    /// Reseals what needs it; answers how many values were sealed again.
    @discardableResult
    static func run(
        store: any ServerStore, secrets: SecretBox, directory: DataDirectory, configuration: inout ServerConfiguration,
        logger: Logger
    ) async throws -> Int {
        var count = 0
        for var group in try await store.groups() {
            guard let sealed = group.policy.sealedGroupKey, let again = try secrets.resealed(sealed) else { continue }
            group.policy.sealedGroupKey = again
            try await store.updateGroup(
                group,
                audit: .init(
                    actor: "system", action: "secrets.resealed", subject: group.name, details: ["what": "groupKey"]))
            count += 1
        }
        for connector in try await store.connectors() {
            var changed = connector.sealedSecrets
            for (name, sealed) in connector.sealedSecrets {
                if let again = try secrets.resealed(sealed) { changed[name] = again }
            }
            guard changed != connector.sealedSecrets else { continue }
            try await store.updateConnectorSecrets(
                name: connector.name, sealedSecrets: changed,
                audit: .init(
                    actor: "system", action: "secrets.resealed", subject: connector.name,
                    details: ["what": changed.keys.sorted().joined(separator: ",")]))
            count += changed.count
        }
        var fileChanged = false
        for path in [\ServerConfiguration.root, \ServerConfiguration.issuing] {
            guard let sealed = configuration[keyPath: path].azureKeyVault?.sealedClientSecret,
                let again = try secrets.resealed(sealed)
            else { continue }
            configuration[keyPath: path].azureKeyVault?.sealedClientSecret = again
            fileChanged = true
            count += 1
        }
        if fileChanged {
            try directory.saveConfiguration(configuration)
            _ = try await store.appendAudit(
                .init(
                    actor: "system", action: "secrets.resealed", subject: DataDirectory.configurationFile,
                    details: ["what": "keyVaultClientSecret"]))
        }
        if count > 0 {
            logger.notice("sealed \(count) secret(s) again with PBKDF2 (they were sealed with the older HKDF scheme)")
        }
        return count
    }
}
