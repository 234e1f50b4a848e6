import Foundation
public import KeygateStore
public import Testing

/// A fresh, empty database for one test, on either backend. PostgreSQL tests need the server that
/// `scripts/test.sh` starts (`KEYGATE_TEST_POSTGRES_URL`); without it they are skipped, unless
/// `KEYGATE_REQUIRE_TOOLS=1`, where they fail.
public final class TestDatabase: Sendable {
    public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
        case sqlite, postgres
        public var description: String { rawValue }
    }

    /// The backends this run covers: SQLite always, PostgreSQL when a server was started for the tests
    /// (or when tools are required, so that a missing server fails instead of passing quietly).
    public static var backends: [Backend] {
        serverURL != nil || ExternalTool.toolsRequired ? [.sqlite, .postgres] : [.sqlite]
    }

    /// The test server's URL (`postgres://keygate@127.0.0.1:PORT/keygate?sslmode=disable`).
    public static var serverURL: String? {
        ProcessInfo.processInfo.environment["KEYGATE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public let backend: Backend
    public let location: DatabaseLocation
    /// The database's URL (PostgreSQL) or file path (SQLite).
    public let text: String
    private let directory: TemporaryDirectory
    private let postgresName: String?

    /// Creates an empty database: a file in a new folder, or a new database on the test server.
    public init(_ backend: Backend, label: String = "db") throws {
        self.backend = backend
        directory = try TemporaryDirectory(label)
        switch backend {
        case .sqlite:
            text = directory.file("keygate.sqlite")
            postgresName = nil
        case .postgres:
            guard let server = Self.serverURL else {
                throw TestDatabaseError(
                    "PostgreSQL tests need KEYGATE_TEST_POSTGRES_URL (scripts/test.sh starts a server)")
            }
            let name = "kgtest_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
            try Self.psql(server, "CREATE DATABASE \(name)")
            var components = URLComponents(string: server)!
            components.path = "/" + name
            text = components.string!
            postgresName = name
        }
        location = try DatabaseLocation(text)
    }

    /// Opens (and migrates) the database; every call is a new connection to the same data.
    public func open() async throws -> DatabaseStore {
        try await DatabaseStore.open(location)
    }

    deinit {
        if let postgresName, let server = Self.serverURL {
            try? Self.psql(server, "DROP DATABASE IF EXISTS \(postgresName) WITH (FORCE)")
        }
    }

    /// Runs one SQL command with `psql` against `url`.
    public static func psql(_ url: String, _ command: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", command]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw TestDatabaseError("psql \(command): \(message)")
        }
    }
}

public struct TestDatabaseError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Trait where Self == ConditionTrait {
    /// Runs only where a PostgreSQL test server is available (`scripts/test.sh` starts one); with
    /// `KEYGATE_REQUIRE_TOOLS=1` the test runs anyway and fails without it.
    public static var needsPostgres: Self {
        .enabled(
            if: TestDatabase.serverURL != nil || ExternalTool.toolsRequired,
            "needs PostgreSQL (KEYGATE_TEST_POSTGRES_URL; scripts/test.sh starts a server)")
    }
}
