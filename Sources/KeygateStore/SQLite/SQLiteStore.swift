import Crypto
import Foundation
import GRDB
import KeygateDomain
import KeygatePKI

/// The embedded store: one SQLite file in WAL mode, shared safely by several processes on one host.
///
/// Times are stored as integer Unix seconds (certificates) or milliseconds (audit), and SQL stays
/// within what PostgreSQL also accepts, so a second implementation can share the schema.
public final class SQLiteStore: Sendable {
    let pool: DatabasePool
    let certificateCommits: CertificateGroupCommit
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
        } catch {
            throw KeygateError(.storeUnavailable, "cannot open the database at \(path): \(error)")
        }
        self.path = path
        self.certificateCommits = CertificateGroupCommit(pool: pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-foundation") { db in
            try db.execute(
                sql: """
                    CREATE TABLE certificates (
                        serial TEXT PRIMARY KEY NOT NULL,
                        subject TEXT NOT NULL,
                        issuer TEXT NOT NULL,
                        not_before INTEGER NOT NULL,
                        not_after INTEGER NOT NULL,
                        profile TEXT NOT NULL,
                        status TEXT NOT NULL,
                        revoked_at INTEGER,
                        revocation_reason INTEGER,
                        pem TEXT NOT NULL,
                        device_id TEXT,
                        created_at INTEGER NOT NULL
                    );
                    CREATE INDEX certificates_by_status ON certificates(issuer, status, not_after);
                    CREATE INDEX certificates_by_device ON certificates(device_id);
                    CREATE INDEX certificates_by_creation ON certificates(created_at, serial);
                    CREATE INDEX certificates_by_expiry ON certificates(not_after);

                    CREATE TABLE issuers (
                        issuer TEXT PRIMARY KEY NOT NULL,
                        last_crl_number INTEGER NOT NULL DEFAULT 0,
                        revocation_revision INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE TABLE crls (
                        issuer TEXT NOT NULL,
                        number INTEGER NOT NULL,
                        this_update INTEGER NOT NULL,
                        next_update INTEGER NOT NULL,
                        der BLOB NOT NULL,
                        entry_count INTEGER NOT NULL,
                        revision INTEGER NOT NULL,
                        PRIMARY KEY (issuer, number)
                    );

                    CREATE TABLE admin_tokens (
                        hash TEXT PRIMARY KEY NOT NULL,
                        name TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );

                    CREATE TABLE audit_events (
                        seq INTEGER PRIMARY KEY NOT NULL,
                        at_ms INTEGER NOT NULL,
                        actor TEXT NOT NULL,
                        action TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        details TEXT NOT NULL,
                        previous_hash TEXT NOT NULL,
                        hash TEXT NOT NULL
                    );
                    CREATE INDEX audit_by_subject ON audit_events(subject, seq);
                    """)
        }
        migrator.registerMigration("v2-onboarding") { db in
            try db.execute(
                sql: """
                    CREATE TABLE groups (
                        name TEXT PRIMARY KEY NOT NULL,
                        policy TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    CREATE TABLE devices (
                        id TEXT PRIMARY KEY NOT NULL,
                        group_name TEXT NOT NULL,
                        state TEXT NOT NULL,
                        pinned_key TEXT,
                        token_hash TEXT,
                        token_used INTEGER NOT NULL DEFAULT 0,
                        attestation_method TEXT,
                        assurance_level INTEGER,
                        ddk_epoch INTEGER NOT NULL DEFAULT 0,
                        failed_attempts INTEGER NOT NULL DEFAULT 0,
                        locked_until INTEGER,
                        state_reason TEXT,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX devices_by_group ON devices(group_name, id);
                    CREATE INDEX devices_by_state ON devices(state, id);
                    CREATE TABLE ddk_keys (
                        device_id TEXT NOT NULL,
                        epoch INTEGER NOT NULL,
                        public_key BLOB NOT NULL,
                        PRIMARY KEY (device_id, epoch)
                    );
                    CREATE TABLE challenges (
                        id TEXT PRIMARY KEY NOT NULL,
                        device_id TEXT NOT NULL,
                        nonce BLOB NOT NULL,
                        epoch INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        used_at INTEGER
                    );
                    CREATE INDEX challenges_by_expiry ON challenges(expires_at);
                    """)
        }
        registerConnectorMigration(&migrator)
        registerLifecycleMigration(&migrator)
        return migrator
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
