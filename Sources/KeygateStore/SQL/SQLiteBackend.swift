import Foundation
import KeygateDomain
import KeygatePKI
import GRDB

/// SQLite through GRDB: one file in WAL mode, one writer at a time (SQLite's own lock serialises
/// writers, across processes too), readers in parallel. Every statement is prepared once per
/// connection and cached.
final class SQLiteBackend: SQLBackend {
    let pool: DatabasePool
    let path: String
    var kind: String { "sqlite" }

    init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // WAL with NORMAL sync survives a killed process; only a power cut may lose the last commit.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            var migrator = DatabaseMigrator()
            for migration in Schema.migrations {
                migrator.registerMigration(migration.name) { db in
                    for statement in migration.statements { try db.execute(sql: statement) }
                }
            }
            try migrator.migrate(pool)
            // Owner only, whatever the umask: the database holds the audit log and sealed secrets.
            // SQLite gives the -wal and -shm files the database's permissions.
            for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
                try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
            }
        } catch {
            throw KeygateError(.storeUnavailable, "cannot open the database at \(path): \(error)")
        }
        self.path = path
    }

    func write<T: Sendable>(serialized: Bool, _ body: @escaping @Sendable (any SQLSession) throws -> T) async throws
        -> T
    {
        try await mappingBusy { try await pool.write { db in try body(SQLiteSession(db)) } }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T {
        try await mappingBusy { try await pool.read { db in try body(SQLiteSession(db)) } }
    }

    func close() async { try? pool.close() }

    /// A busy or locked database becomes `storeUnavailable` (503, retry in a second).
    private func mappingBusy<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
        {
            throw KeygateError(.storeUnavailable, "the database is busy", retryAfter: 1)
        } catch let error as DatabaseError
            where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY
            || error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
        {
            throw KeygateError(.conflict, "the record exists already: \(error.message ?? "constraint failed")")
        }
    }
}

/// A GRDB connection inside one transaction.
final class SQLiteSession: SQLSession {
    let db: Database
    private(set) var changesCount = 0
    var locksRows: Bool { false }

    init(_ db: Database) { self.db = db }

    private func statement(_ sql: String, _ arguments: SQLArguments) throws -> Statement {
        // Statements with long `IN (?, ?, …)` lists vary with their input: prepared but not kept.
        let statement = arguments.count > 32 ? try db.makeStatement(sql: sql) : try db.cachedStatement(sql: sql)
        statement.setUncheckedArguments(StatementArguments(arguments.map(\.sqlValue.databaseValue)))
        return statement
    }

    func execute(sql: String, arguments: SQLArguments) throws -> Int {
        try statement(sql, arguments).execute()
        changesCount = db.changesCount
        return changesCount
    }

    func fetchAll(sql: String, arguments: SQLArguments) throws -> [SQLRow] {
        let statement = try statement(sql, arguments)
        let names = statement.columnNames.map { $0.lowercased() }
        let cursor = try Row.fetchCursor(statement)
        var rows: [SQLRow] = []
        while let row = try cursor.next() {
            rows.append(SQLRow(names: names, values: row.databaseValues.map(SQLValue.init)))
        }
        return rows
    }
}

extension SQLValue {
    var databaseValue: DatabaseValue {
        switch self {
        case .null: return .null
        case .integer(let value): return value.databaseValue
        case .real(let value): return value.databaseValue
        case .text(let value): return value.databaseValue
        case .blob(let bytes): return Data(bytes).databaseValue
        }
    }

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let value): self = .integer(value)
        case .double(let value): self = .real(value)
        case .string(let value): self = .text(value)
        case .blob(let data): self = .blob(Array(data))
        }
    }
}
