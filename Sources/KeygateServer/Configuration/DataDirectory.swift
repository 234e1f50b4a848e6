public import Foundation
import KeygatePKI
public import KeygateStore
import SwiftASN1
import X509

/// The data folder `keygate init` creates and `keygate serve` runs from.
///
/// ```
/// keygate.json          configuration (no secrets)
/// keygate.sqlite        the database (WAL), unless it is on PostgreSQL
/// ca/root.crt.pem       root CA certificate
/// ca/root.key.pem       root CA key, encrypted PKCS #8 (software key store only)
/// ca/issuing.crt.pem    issuing CA certificate
/// ca/issuing.key.pem    issuing CA key, encrypted PKCS #8
/// ca/chain.pem          issuing + root, what clients trust
/// tls/server.crt.pem    the HTTPS listener's certificate chain
/// tls/server.key.pem    its key (0600)
/// admin-token           the first admin token (0600)
/// passphrase            the CA key passphrase, only when init generated it (0600)
/// ```
public struct DataDirectory: Sendable {
    /// The folder, as a standardized file URL.
    public let url: URL

    /// Refers to the folder at `path` (relative paths resolve against the working directory); it need not exist.
    public init(path: String) {
        self.url = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }

    /// The configuration file, relative to the folder.
    public static let configurationFile = "keygate.json"
    /// The first admin token, written by `init` (0600).
    public static let adminTokenFile = "admin-token"
    /// The CA key passphrase, written by `init` only when it generated one (0600).
    public static let passphraseFile = "passphrase"
    /// The issuing and root CA certificates, PEM: what clients trust.
    public static let chainFile = "ca/chain.pem"

    /// The absolute path of `relative` in the folder; absolute paths are answered as they are.
    public func path(_ relative: String) -> String {
        relative.hasPrefix("/") ? relative : url.appendingPathComponent(relative).path
    }

    /// Whether the folder holds a `keygate.json`.
    public var exists: Bool { FileManager.default.fileExists(atPath: path(Self.configurationFile)) }

    /// Reads `keygate.json`; throws `dataDirectoryMissing` when it is missing, `malformedJSON` when it is not valid.
    public func loadConfiguration() throws -> ServerConfiguration {
        let file = path(Self.configurationFile)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw KeygateError(
                .dataDirectoryMissing,
                "\(url.path) is not a Keygate data folder (no \(Self.configurationFile)); run `keygate init --data-dir \(url.path)` first"
            )
        }
        do {
            return try JSONDecoder().decode(ServerConfiguration.self, from: data)
        } catch {
            throw KeygateError(.malformedJSON, "\(file) cannot be read: \(error)")
        }
    }

    func saveConfiguration(_ configuration: ServerConfiguration) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try write(try encoder.encode(configuration), to: Self.configurationFile, mode: 0o644)
    }

    /// Writes a file atomically with the given permissions (0600 for secrets).
    public func write(_ data: Data, to relative: String, mode: Int) throws {
        let target = URL(fileURLWithPath: path(relative))
        let folder = target.deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: folder.path) {
            // Set explicitly: the process's umask must not decide who reads `ca/` or `tls/`.
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: folder.path)
        }
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp")
        _ = FileManager.default.createFile(atPath: temporary.path, contents: nil, attributes: [.posixPermissions: mode])
        let handle = try FileHandle(forWritingTo: temporary)
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: temporary.path)
        // rename(2) replaces an existing file atomically (Foundation's replaceItemAt can lose it on Linux).
        guard rename(temporary.path, target.path) == 0 else {
            let code = errno
            try? FileManager.default.removeItem(at: temporary)
            throw KeygateError(.internalError, "cannot write \(target.path): \(String(cString: strerror(code)))")
        }
    }

    /// The text of a file in the folder; throws `dataDirectoryMissing` when it cannot be read.
    public func read(_ relative: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path(relative)) else {
            throw KeygateError(.dataDirectoryMissing, "\(path(relative)) is missing")
        }
        return String(decoding: data, as: UTF8.self)
    }

    func readCertificates(_ relative: String) throws -> [Certificate] {
        let text = try read(relative)
        do {
            return try PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) }
        } catch {
            throw KeygateError(.malformedPEM, "\(path(relative)) does not hold PEM certificates: \(error)")
        }
    }
}

/// Where the CA key passphrase comes from, in order: `--passphrase-file`, `KEYGATE_PASSPHRASE`,
/// then the `passphrase` file `init` generated in the data folder.
public enum PassphraseSource {
    /// The environment variable that can hold the passphrase.
    public static let environmentVariable = "KEYGATE_PASSPHRASE"

    /// The passphrase from the first source that has one, or `nil` when none does. Throws `passphraseMissing`
    /// when the given file cannot be read or the passphrase is shorter than 8 characters.
    public static func resolve(file: String?, dataDirectory: DataDirectory?) throws -> String? {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw KeygateError(.passphraseMissing, "cannot read the passphrase file \(file)")
            }
            return try clean(String(decoding: data, as: UTF8.self), origin: file)
        }
        if let value = ProcessInfo.processInfo.environment[environmentVariable], !value.isEmpty {
            return try clean(value, origin: environmentVariable)
        }
        if let dataDirectory {
            let path = dataDirectory.path(DataDirectory.passphraseFile)
            if let data = FileManager.default.contents(atPath: path) {
                return try clean(String(decoding: data, as: UTF8.self), origin: path)
            }
        }
        return nil
    }

    private static func clean(_ text: String, origin: String) throws -> String {
        let trimmed = text.trimmingCharacters(in: .newlines)
        guard trimmed.count >= 8 else {
            throw KeygateError(.passphraseMissing, "the passphrase from \(origin) is shorter than 8 characters")
        }
        return trimmed
    }
}

extension DataDirectory {
    /// Where the deployment's database is: `KEYGATE_DATABASE_URL` when set, else the configuration's
    /// `database` (an SQLite file in this folder or a PostgreSQL URL). The PostgreSQL password comes
    /// from `databasePasswordFile`, else `PGPASSWORD`, else the URL.
    public func databaseLocation(
        _ configuration: ServerConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> DatabaseLocation {
        let text = environment["KEYGATE_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? configuration.database
        guard PostgresLocation.isPostgresURL(text) else { return .sqlite(path: path(text)) }
        var password = environment["PGPASSWORD"]
        if let file = configuration.databasePasswordFile {
            guard let data = FileManager.default.contents(atPath: path(file)) else {
                throw KeygateError(.storeUnavailable, "cannot read the database password file \(path(file))")
            }
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return try DatabaseLocation(text, password: password)
    }
}
