import Foundation
import KeygateDomain
import KeygatePKI
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// Where a PostgreSQL deployment lives: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]`.
public struct PostgresLocation: Sendable, Hashable, CustomStringConvertible {
    /// How the connection uses TLS, as libpq's `sslmode` (`disable`, `prefer`, `require`, `verify-full`).
    public enum SSLMode: String, Sendable, Hashable, CaseIterable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode

    /// Parses a `postgres://` or `postgresql://` URL; `password` (from a file or `PGPASSWORD`) wins over
    /// one in the URL. Throws `invalidRequest` for anything else.
    public init(url text: String, password: String? = nil) throws {
        guard let components = URLComponents(string: text),
            ["postgres", "postgresql"].contains(components.scheme?.lowercased() ?? "")
        else {
            throw KeygateError(
                .invalidDatabaseURL, "'\(text)' is not a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)")
        }
        guard let host = components.host, !host.isEmpty, let user = components.user, !user.isEmpty else {
            throw KeygateError(.invalidDatabaseURL, "the database URL needs a user and a host: postgres://USER@HOST/DATABASE")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else {
            throw KeygateError(.invalidDatabaseURL, "the database URL names no database: postgres://USER@HOST/DATABASE")
        }
        var mode = SSLMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value.flatMap(SSLMode.init(rawValue:)) else {
                    throw KeygateError(
                        .invalidDatabaseURL,
                        "sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                mode = value
            default:
                throw KeygateError(.invalidDatabaseURL, "the database URL parameter '\(item.name)' is not supported")
            }
        }
        self.host = host
        self.port = components.port ?? 5432
        self.user = user
        self.password = password ?? components.password
        self.database = database
        self.sslMode = mode
    }

    /// Whether `text` names a PostgreSQL database rather than an SQLite file.
    public static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// The URL without its password, for logs and configuration files.
    public var description: String {
        "postgres://\(user)@\(host):\(port)/\(database)" + (sslMode == .prefer ? "" : "?sslmode=\(sslMode.rawValue)")
    }
}

/// PostgreSQL through postgres-nio, for several Keygate nodes on one database.
///
/// The store's transactions are synchronous code (the same code runs on SQLite), so they run on a
/// pool of threads of their own, each holding one connection for the transaction, and wait for
/// postgres-nio's answers there. Serialised write transactions first take one transaction-scoped
/// advisory lock, so they run one at a time across every node, as SQLite's writer lock makes them
/// run on one host: the audit chain needs that order anyway, and read-decide-write code keeps its
/// meaning. Single-statement writes (challenge use, DDK epoch moves, outbox leases) skip it; their
/// `WHERE` clauses make them atomic.
final class PostgresBackend: SQLBackend {
    var kind: String { "postgres" }
    let location: PostgresLocation
    private let configuration: PostgresConnection.Configuration
    private let group: any EventLoopGroup
    private let threads: NIOThreadPool
    private let idle = Mutex<[PostgresConnection]>([])
    private let slots: DispatchSemaphore
    private let logger: Logger
    private let nextID = Atomic<Int>(1)
    static let writerLock: Int64 = 0x4B47_5752  // "KGWR"
    static let migrationLock: Int64 = 0x4B47_4D47  // "KGMG"

    init(location: PostgresLocation, connections: Int = 8, logger: Logger = Logger(label: "keygate.postgres")) async throws {
        self.location = location
        let tls: PostgresConnection.Configuration.TLS
        switch location.sslMode {
        case .disable:
            tls = .disable
        case .prefer, .require:
            var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            tlsConfiguration.certificateVerification = .none
            let context = try NIOSSLContext(configuration: tlsConfiguration)
            tls = location.sslMode == .prefer ? .prefer(context) : .require(context)
        case .verifyFull:
            tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: tls)
        group = MultiThreadedEventLoopGroup.singleton
        threads = NIOThreadPool(numberOfThreads: connections)
        threads.start()
        slots = DispatchSemaphore(value: connections)
        self.logger = logger
        try await migrate()
    }

    // MARK: Transactions

    func write<T: Sendable>(serialized: Bool, _ body: @escaping @Sendable (any SQLSession) throws -> T) async throws
        -> T
    {
        try await transaction(
            begin: "BEGIN", lock: serialized ? Self.writerLock : nil, body)
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        try await transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", lock: nil, body)
    }

    deinit {
        for connection in idle.withLock({ $0 }) { Self.discard(connection) }
        threads.shutdownGracefully { _ in }
    }

    /// Closes a connection, keeping it alive until the close completes (postgres-nio wants connections
    /// closed before they go away).
    static func discard(_ connection: PostgresConnection) {
        let closing: EventLoopFuture<Void> = connection.close()
        closing.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    func close() async {
        let connections = idle.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for connection in connections { try? await connection.close() }
        try? await threads.shutdownGracefully()
    }

    private func transaction<T: Sendable>(
        begin: String, lock: Int64?, _ body: @escaping @Sendable (any SQLSession) throws -> T
    ) async throws -> T {
        let eventLoop = group.next()
        return try await threads.runIfActive(eventLoop: eventLoop) { [self] in
            try runBlocking(begin: begin, lock: lock, body)
        }.get()
    }

    /// Runs one transaction on this (pool) thread, retrying a serialisation failure or deadlock.
    private func runBlocking<T>(begin: String, lock: Int64?, _ body: (any SQLSession) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        var attempt = 0
        while true {
            attempt += 1
            let connection = try checkOut()
            let session = PostgresSession(connection: connection, logger: logger)
            do {
                try session.execute(sql: begin)
                if let lock { _ = try session.execute(sql: "SELECT pg_advisory_xact_lock(?)", arguments: [lock]) }
                let result = try body(session)
                try session.execute(sql: "COMMIT")
                checkIn(connection)
                return result
            } catch {
                let usable = !connection.isClosed && (try? session.execute(sql: "ROLLBACK")) != nil
                if usable { checkIn(connection) } else { Self.discard(connection) }
                let state = Self.sqlState(error)
                if attempt < 5, state == "40001" || state == "40P01" { continue }
                throw Self.mapped(error, connectionLost: !usable)
            }
        }
    }

    private func checkOut() throws -> PostgresConnection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if !connection.isClosed { return connection }
        }
        do {
            let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
            return try PostgresConnection.connect(
                on: group.next(), configuration: configuration, id: id, logger: logger
            ).wait()
        } catch {
            throw KeygateError(
                .storeUnavailable, "cannot reach PostgreSQL at \(location.host):\(location.port): \(Self.describe(error))",
                retryAfter: 1)
        }
    }

    private func checkIn(_ connection: PostgresConnection) {
        idle.withLock { $0.append(connection) }
    }

    // MARK: Errors

    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        return "\(error)"
    }

    /// A lost connection or a database shutting down becomes `storeUnavailable` (503, retry soon); a
    /// KeygateError thrown by the store's own code passes through; anything else keeps its message.
    static func mapped(_ error: any Error, connectionLost: Bool) -> any Error {
        if error is KeygateError { return error }
        let state = sqlState(error)
        // Class 08: connection exceptions; 57P0x: the server is shutting down; 53: out of resources.
        if connectionLost || state.map({ $0.hasPrefix("08") || $0.hasPrefix("57P") || $0.hasPrefix("53") }) == true
            || (error as? PSQLError).map({ $0.serverInfo == nil }) == true
        {
            return KeygateError(.storeUnavailable, "PostgreSQL is unavailable: \(describe(error))", retryAfter: 1)
        }
        if state == "23505" {
            return KeygateError(.conflict, "the record exists already: \(describe(error))")
        }
        return KeygateError(.internalError, "PostgreSQL: \(describe(error))")
    }

    // MARK: Migrations

    /// Applies the migrations this database lacks, one node at a time (an advisory lock), in one transaction.
    private func migrate() async throws {
        let _: Int = try await transaction(begin: "BEGIN", lock: Self.migrationLock) { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS keygate_migrations (
                        name TEXT PRIMARY KEY NOT NULL, applied_at BIGINT NOT NULL)
                    """)
            let applied = Set(try db.fetchAll(sql: "SELECT name FROM keygate_migrations").map { $0["name"] as String })
            var count = 0
            for migration in Schema.migrations where !applied.contains(migration.name) {
                for statement in migration.statements { try db.execute(sql: SQLDialect.postgresDDL(statement)) }
                try db.execute(
                    sql: "INSERT INTO keygate_migrations (name, applied_at) VALUES (?, ?)",
                    arguments: [migration.name, Date().unixMilliseconds])
                count += 1
            }
            return count
        }
    }
}

/// One PostgreSQL connection inside one transaction, run from a blocking thread.
final class PostgresSession: SQLSession {
    let connection: PostgresConnection
    let logger: Logger
    private(set) var changesCount = 0
    var locksRows: Bool { true }

    init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    private func run(_ sql: String, _ arguments: SQLArguments) throws -> PostgresQueryResult {
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument.sqlValue {
            case .null: bindings.appendNull()
            case .integer(let value): bindings.append(value)
            case .real(let value): bindings.append(value)
            case .text(let value): bindings.append(value)
            case .blob(let bytes): bindings.append(ByteBuffer(bytes: bytes))
            }
        }
        let query = PostgresQuery(unsafeSQL: SQLDialect.postgresPlaceholders(sql), binds: bindings)
        return try connection.query(query, logger: logger).wait()
    }

    func execute(sql: String, arguments: SQLArguments) throws -> Int {
        let result = try run(sql, arguments)
        changesCount = result.metadata.rows ?? 0
        return changesCount
    }

    func fetchAll(sql: String, arguments: SQLArguments) throws -> [SQLRow] {
        let result = try run(sql, arguments)
        var rows: [SQLRow] = []
        rows.reserveCapacity(result.rows.count)
        var names: [String]?
        for row in result.rows {
            if names == nil { names = row.map(\.columnName) }
            rows.append(SQLRow(names: names!, values: try row.map(Self.value)))
        }
        return rows
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .numeric: return .real(Double(try cell.decode(String.self)) ?? 0)
        case .bytea:
            var buffer = try cell.decode(ByteBuffer.self)
            return .blob(buffer.readBytes(length: buffer.readableBytes) ?? [])
        default: return .text(try cell.decode(String.self))
        }
    }
}

/// What differs between the two SQL dialects the store speaks.
enum SQLDialect {
    private static let placeholders = Mutex<[String: String]>([:])

    /// `?` placeholders (outside quotes) become `$1`, `$2`, …; translations are remembered.
    static func postgresPlaceholders(_ sql: String) -> String {
        if let known = placeholders.withLock({ $0[sql] }) { return known }
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var index = 0
        var quoted = false
        for character in sql {
            if character == "'" { quoted.toggle() }
            if character == "?" && !quoted {
                index += 1
                out += "$\(index)"
            } else {
                out.append(character)
            }
        }
        placeholders.withLock { cache in
            if cache.count > 4096 { cache.removeAll() }
            cache[sql] = out
        }
        return out
    }

    /// The schema's SQLite DDL in PostgreSQL's words: 64-bit integers, `BYTEA`, identity keys, and
    /// byte-wise text order (so keyset paging and `id > ?` order IDs as SQLite does).
    static func postgresDDL(_ sql: String) -> String {
        var out = sql.replacingOccurrences(of: "INTEGER PRIMARY KEY AUTOINCREMENT", with: "BIGSERIAL PRIMARY KEY")
        out = out.replacingOccurrences(of: " INTEGER", with: " BIGINT")
        out = out.replacingOccurrences(of: " BLOB", with: " BYTEA")
        out = out.replacingOccurrences(of: " TEXT", with: " TEXT COLLATE \"C\"")
        return out
    }
}
