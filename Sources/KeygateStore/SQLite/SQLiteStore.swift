import Crypto
import Foundation
import GRDB
import KeygateDomain
import KeygatePKI
import Synchronization

/// The embedded store: one SQLite file in WAL mode, shared safely by several processes on one host.
///
/// Times are stored as integer Unix seconds (certificates) or milliseconds (audit), and SQL stays
/// within what PostgreSQL also accepts, so a second implementation can share the schema.
public final class SQLiteStore: Sendable {
    let pool: DatabasePool
    let certificateCommits: CertificateGroupCommit
    /// The key of the audit chain, once the server has set it (``useAuditKey(_:)``).
    let auditKey = AuditKeyHolder()
    /// The database file, as given to ``init(path:)``.
    public let path: String

    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // WAL with NORMAL sync survives a killed process; only a power cut may lose the last commit.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
            // Owner only, whatever the umask: the database holds the audit log and sealed secrets.
            // SQLite gives the -wal and -shm files the database's permissions.
            for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
                try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
            }
        } catch {
            throw KeygateError(.storeUnavailable, "cannot open the database at \(path): \(error)")
        }
        self.path = path
        self.certificateCommits = CertificateGroupCommit(pool: pool, auditKey: auditKey)
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await mappingBusy { try await pool.write(body) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await mappingBusy { try await pool.read(body) }
    }

    /// A busy or locked database becomes `storeUnavailable` (503, retry in a second).
    private func mappingBusy<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
        {
            throw KeygateError(.storeUnavailable, "the database is busy", retryAfter: 1)
        }
    }
}

extension Date {
    var unixSeconds: Int64 { Int64(timeIntervalSince1970.rounded(.down)) }
    var unixMilliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
    init(unixSeconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(unixSeconds)) }
    init(unixMilliseconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(unixMilliseconds) / 1000) }
}

/// The audit chain's key, set once the server has unsealed it and read by every append.
final class AuditKeyHolder: Sendable {
    private let value = Mutex<AuditChainKey?>(nil)

    var current: AuditChainKey? { value.withLock { $0 } }

    func set(_ key: AuditChainKey) { value.withLock { $0 = key } }
}
