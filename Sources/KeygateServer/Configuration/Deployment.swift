public import Foundation
import KeygateDomain
import KeygatePKI
import KeygateStore

/// Growing a deployment: another node on the same PostgreSQL database (`keygate node join`), and a
/// single-node deployment moved from SQLite to PostgreSQL (`keygate db copy`).
public enum Deployment {
    /// The listeners of a joining node (it may run beside the others on one host).
    public struct NodeOptions: Sendable {
        public var listenHost: String?
        public var httpsPort: Int?
        public var httpPort: Int?
        public var metricsListen: String?
        public init() {}
    }

    /// Files a node keeps for itself and never copies: the SQLite database and its journal files,
    /// the audit checkpoints it signed, temporary files.
    static func nodeLocal(_ relative: String, configuration: ServerConfiguration) -> Bool {
        let checkpoints = configuration.auditCheckpointFile ?? AuditAnchor.defaultCheckpointFile
        let name = (relative as NSString).lastPathComponent
        // Any SQLite file: the configured one, or the one a `db copy` left behind as a backup.
        return relative == configuration.database || relative.hasPrefix(configuration.database + "-")
            || name.hasSuffix(".sqlite") || name.contains(".sqlite-")
            || relative == checkpoints || name.hasPrefix(".") || name.hasSuffix(".tmp")
    }

    /// Makes `target` a data folder of another node of the deployment in `source`: the configuration,
    /// the CA certificates and key references (encrypted key files, or the same PKCS #11 token or
    /// Key Vault key), the TLS identity, the audit chain's key and the admin token are copied; the
    /// database stays where it is (PostgreSQL, shared). Throws `nodeJoinNeedsPostgres` when the
    /// deployment is on SQLite and `dataDirectoryExists` when `target` holds a deployment.
    @discardableResult
    public static func joinNode(
        from source: DataDirectory, to target: DataDirectory, options: NodeOptions = NodeOptions(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServerConfiguration {
        var configuration = try source.loadConfiguration()
        guard case .postgres = try source.databaseLocation(configuration, environment: environment) else {
            throw KeygateError(
                .nodeJoinNeedsPostgres,
                "\(source.url.path) keeps its data in SQLite, which one node uses alone; move it to PostgreSQL first "
                    + "(`keygate db copy --from \(source.url.path) --to postgres://…`)")
        }
        guard !target.exists else {
            throw KeygateError(.dataDirectoryExists, "\(target.url.path) already holds a Keygate data folder")
        }
        let files = FileManager.default
        guard let walker = files.enumerator(atPath: source.url.path) else {
            throw KeygateError(.dataDirectoryMissing, "cannot read \(source.url.path)")
        }
        var copies: [String] = []
        while let relative = walker.nextObject() as? String {
            var isFolder: ObjCBool = false
            _ = files.fileExists(atPath: source.path(relative), isDirectory: &isFolder)
            if isFolder.boolValue || nodeLocal(relative, configuration: configuration) { continue }
            copies.append(relative)
        }
        for relative in copies.sorted() where relative != DataDirectory.configurationFile {
            guard let data = files.contents(atPath: source.path(relative)) else { continue }
            let mode = (try? files.attributesOfItem(atPath: source.path(relative))[.posixPermissions] as? Int) ?? 0o600
            try target.write(data, to: relative, mode: mode)
        }
        if let host = options.listenHost {
            configuration.https.host = host
            configuration.http.host = host
        }
        if let port = options.httpsPort {
            configuration.https.port = port
            // Admin commands run with --data-dir on this node's host reach this node.
            if var admin = URLComponents(string: configuration.adminURL), port != 0 {
                admin.port = port
                configuration.adminURL = admin.string ?? configuration.adminURL
            }
        }
        if let port = options.httpPort { configuration.http.port = port }
        if let metrics = options.metricsListen { configuration.metricsListen = metrics }
        try target.saveConfiguration(configuration)
        return configuration
    }

    /// Copies the deployment in `source` (SQLite) into the empty PostgreSQL database at `url`, checks
    /// that every table holds as many rows on both sides and that the audit chain verifies there, then
    /// points the folder's configuration at PostgreSQL. The SQLite file is left as it was (a backup).
    public static func moveToPostgres(
        _ source: DataDirectory, url: String, passwordFile: String?, passphrase: String?,
        progress: @escaping @Sendable (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> [String: Int] {
        var configuration = try source.loadConfiguration()
        guard case .sqlite = try source.databaseLocation(configuration, environment: [:]) else {
            throw KeygateError(.invalidDatabaseURL, "\(source.url.path) is on PostgreSQL already")
        }
        var password = ProcessInfo.processInfo.environment["PGPASSWORD"]
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: source.path(passwordFile)) else {
                throw KeygateError(.storeUnavailable, "cannot read the database password file \(passwordFile)")
            }
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let location = try DatabaseLocation(url, password: password)
        guard case .postgres = location else {
            throw KeygateError(.invalidDatabaseURL, "'\(url)' is not a postgres:// URL")
        }
        let from = try await DatabaseStore.open(try source.databaseLocation(configuration, environment: [:]))
        let to = try await DatabaseStore.open(location)
        let total = try await DatabaseCopy.counts(from).values.reduce(0, +)
        let counts = try await DatabaseCopy.copy(from: from, to: to) { progress($0, total) }
        // The chain is checked with its key, as the server would.
        if let passphrase, let key = try AuditAnchor.loadKey(directory: source, secrets: SecretBox(passphrase: passphrase)) {
            to.useAuditKey(key)
        }
        if let broken = try await to.verifyAuditChain() {
            throw KeygateError(
                .auditChainBroken, "the audit chain does not verify after the copy: \(broken.reason)")
        }
        await from.close()
        await to.close()
        configuration.database = location.description
        configuration.databasePasswordFile = passwordFile
        try source.saveConfiguration(configuration)
        return counts
    }
}
