import Foundation
import KeygateDomain
import KeygatePKI
import Logging
import Synchronization

/// Where a deployment's database is: an SQLite file (one node, the embedded default) or a
/// PostgreSQL database (one or more nodes).
public enum DatabaseLocation: Sendable, Hashable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    /// A `postgres://` URL (password from `password`, else the URL) or an SQLite file path.
    public init(_ text: String, password: String? = nil) throws {
        if PostgresLocation.isPostgresURL(text) {
            self = .postgres(try PostgresLocation(url: text, password: password))
        } else {
            self = .sqlite(path: text)
        }
    }

    /// The file path, or the URL without its password.
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let location): return location.description
        }
    }
}

/// Keygate's store: every store protocol, written once in the SQL that SQLite and PostgreSQL share,
/// on one of the two backends.
///
/// Times are stored as integer Unix seconds (certificates) or milliseconds (audit and the rest).
public final class DatabaseStore: Sendable {
    let backend: any SQLBackend
    let certificateCommits: CertificateGroupCommit
    /// The key of the audit chain, once the server has set it (``useAuditKey(_:)``).
    let auditKey = AuditKeyHolder()
    /// Revocation revisions this store's own transactions made (see ``statusChanges(issuer:after:limit:)``).
    let ownRevisions = OwnRevisions()
    /// Where the database is.
    public let location: DatabaseLocation

    /// Opens (creating if needed) the SQLite database at `path` and migrates it to the current schema.
    public convenience init(path: String) throws {
        self.init(backend: try SQLiteBackend(path: path), location: .sqlite(path: path))
    }

    init(backend: any SQLBackend, location: DatabaseLocation) {
        self.backend = backend
        self.location = location
        self.certificateCommits = CertificateGroupCommit(backend: backend, auditKey: auditKey)
    }

    /// Opens the database at `location`, migrating it to the current schema (on PostgreSQL, one node
    /// at a time). Throws `storeUnavailable` when it cannot be reached.
    public static func open(_ location: DatabaseLocation, connections: Int = 8) async throws -> DatabaseStore {
        switch location {
        case .sqlite(let path):
            return try DatabaseStore(path: path)
        case .postgres(let postgres):
            let backend = try await PostgresBackend(location: postgres, connections: connections)
            return DatabaseStore(backend: backend, location: location)
        }
    }

    /// `sqlite` or `postgres`.
    public var backendKind: String { backend.kind }

    /// Closes the database's connections.
    public func close() async { await backend.close() }

    /// A read-decide-write transaction, run one at a time across every node (it may extend the audit chain).
    @discardableResult
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        try await backend.write(serialized: true, body)
    }

    /// A write whose statements are atomic on their own (`UPDATE … WHERE` guards); never appends audit.
    @discardableResult
    func writeAtomic<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        try await backend.write(serialized: false, body)
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        try await backend.read(body)
    }
}

/// The embedded store's former name.
public typealias SQLiteStore = DatabaseStore

extension Date {
    var unixSeconds: Int64 { Int64(timeIntervalSince1970.rounded(.down)) }
    var unixMilliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
    init(unixSeconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(unixSeconds)) }
    init(unixMilliseconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(unixMilliseconds) / 1000) }
}

/// The revocation revisions committed through this store instance (this node), per issuer, until
/// ``DatabaseStore/statusChanges(issuer:after:limit:)`` has reported past them.
final class OwnRevisions: Sendable {
    private let revisions = Mutex<[String: Set<Int64>]>([:])

    func add(issuer: String, _ revision: Int64) { revisions.withLock { _ = $0[issuer, default: []].insert(revision) } }

    func contains(issuer: String, _ revision: Int64) -> Bool { revisions.withLock { $0[issuer]?.contains(revision) ?? false } }

    /// Forgets revisions up to `revision`: they were reported.
    func forget(issuer: String, through revision: Int64) {
        revisions.withLock { $0[issuer] = $0[issuer]?.filter { $0 > revision } }
    }
}

/// The audit chain's key, set once the server has unsealed it and read by every append.
final class AuditKeyHolder: Sendable {
    private let value = Mutex<AuditChainKey?>(nil)

    var current: AuditChainKey? { value.withLock { $0 } }

    func set(_ key: AuditChainKey) { value.withLock { $0 = key } }
}
