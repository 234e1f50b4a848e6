import Foundation

/// A value bound to a statement's `?` or read from a column: what both backends store.
enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A Swift value that can be bound to a statement.
protocol SQLBindable: Sendable {
    var sqlValue: SQLValue { get }
}

/// A Swift value that can be read from a column. Reading a column as a type it does not hold (or a
/// `NULL` as a non-optional) is a programming error, as it is in GRDB.
protocol SQLColumn {
    init?(sqlValue: SQLValue)
}

extension String: SQLBindable, SQLColumn {
    var sqlValue: SQLValue { .text(self) }
    init?(sqlValue: SQLValue) {
        guard case .text(let text) = sqlValue else { return nil }
        self = text
    }
}

extension Int64: SQLBindable, SQLColumn {
    var sqlValue: SQLValue { .integer(self) }
    init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .integer(let value): self = value
        case .real(let value): self = Int64(value)
        default: return nil
        }
    }
}

extension Int: SQLBindable, SQLColumn {
    var sqlValue: SQLValue { .integer(Int64(self)) }
    init?(sqlValue: SQLValue) {
        guard let value = Int64(sqlValue: sqlValue) else { return nil }
        self = Int(value)
    }
}

/// Booleans are stored as 0 and 1 in both backends (one schema for both).
extension Bool: SQLBindable, SQLColumn {
    var sqlValue: SQLValue { .integer(self ? 1 : 0) }
    init?(sqlValue: SQLValue) {
        guard let value = Int64(sqlValue: sqlValue) else { return nil }
        self = value != 0
    }
}

extension Double: SQLBindable, SQLColumn {
    var sqlValue: SQLValue { .real(self) }
    init?(sqlValue: SQLValue) {
        switch sqlValue {
        case .real(let value): self = value
        case .integer(let value): self = Double(value)
        default: return nil
        }
    }
}

extension Data: SQLBindable, SQLColumn {
    var sqlValue: SQLValue { .blob(Array(self)) }
    init?(sqlValue: SQLValue) {
        guard case .blob(let bytes) = sqlValue else { return nil }
        self = Data(bytes)
    }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

extension Optional: SQLColumn where Wrapped: SQLColumn {
    init?(sqlValue: SQLValue) {
        if case .null = sqlValue {
            self = .none
        } else if let value = Wrapped(sqlValue: sqlValue) {
            self = .some(value)
        } else {
            return nil
        }
    }
}

/// The values bound to a statement, in the order of its `?`.
typealias SQLArguments = [any SQLBindable]

/// One result row: values by position and by (lower-case) column name.
struct SQLRow: Sendable {
    let names: [String]
    let values: [SQLValue]

    func value(_ name: String) -> SQLValue {
        guard let index = names.firstIndex(of: name) else {
            preconditionFailure("no column \(name) in \(names)")
        }
        return values[index]
    }

    subscript<T: SQLColumn>(_ name: String) -> T {
        guard let value = T(sqlValue: value(name)) else {
            preconditionFailure("column \(name) holds \(value(name)), not \(T.self)")
        }
        return value
    }

    subscript<T: SQLColumn>(_ index: Int) -> T {
        guard let value = T(sqlValue: values[index]) else {
            preconditionFailure("column \(index) holds \(values[index]), not \(T.self)")
        }
        return value
    }
}

/// One transaction (or read) on either backend. The store's SQL is written once, with `?`
/// placeholders, in the subset SQLite and PostgreSQL share; each backend runs it as its own.
protocol SQLSession: AnyObject {
    /// Runs a statement; answers how many rows it changed.
    @discardableResult
    func execute(sql: String, arguments: SQLArguments) throws -> Int
    /// Runs a query and reads every row.
    func fetchAll(sql: String, arguments: SQLArguments) throws -> [SQLRow]
    /// How many rows the last `execute` changed.
    var changesCount: Int { get }
    /// Whether `SELECT … FOR UPDATE SKIP LOCKED` exists (PostgreSQL; SQLite's writer lock makes it moot).
    var locksRows: Bool { get }
}

extension SQLSession {
    @discardableResult
    func execute(sql: String) throws -> Int { try execute(sql: sql, arguments: []) }

    func fetchAll(sql: String) throws -> [SQLRow] { try fetchAll(sql: sql, arguments: []) }

    func fetchOne(sql: String, arguments: SQLArguments = []) throws -> SQLRow? {
        try fetchAll(sql: sql, arguments: arguments).first
    }

    /// The first column of the first row, or `nil` when there is no row (or it holds `NULL`).
    func fetchScalar<T: SQLColumn>(_ type: T.Type, sql: String, arguments: SQLArguments = []) throws -> T? {
        guard let row = try fetchOne(sql: sql, arguments: arguments), let value = row.values.first else { return nil }
        if case .null = value { return nil }
        return T(sqlValue: value)
    }
}

/// Where a backend runs transactions.
protocol SQLBackend: Sendable {
    /// Runs `body` in a write transaction. `serialized` transactions run one at a time across every
    /// process sharing the database (they read, decide and write, and they extend the audit chain);
    /// the others are single atomic statements that need no such order.
    func write<T: Sendable>(serialized: Bool, _ body: @escaping @Sendable (any SQLSession) throws -> T) async throws
        -> T
    /// Runs `body` on a consistent snapshot.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLSession) throws -> T) async throws -> T
    /// Closes connections; the backend is not used afterwards.
    func close() async
    /// What the backend is, for logs and `keygate status`: `sqlite` or `postgres`.
    var kind: String { get }
}
