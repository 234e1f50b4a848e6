import GRDB

/// The SQLite schema, one versioned migration after another. A migration, once released, never
/// changes: a change to the schema is a new migration at the end. The SQL stays within what
/// PostgreSQL also accepts.
extension SQLiteStore {
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
        migrator.registerMigration("v5-bounded-challenges") { db in
            // The per-device cap on outstanding challenges looks them up by device.
            try db.execute(sql: "CREATE INDEX challenges_by_device ON challenges(device_id, expires_at)")
        }
        migrator.registerMigration("v6-admin-token-roles") { db in
            // Tokens made before roles existed keep full rights.
            try db.execute(
                sql: """
                    ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
                    ALTER TABLE admin_tokens ADD COLUMN expires_at INTEGER;
                    ALTER TABLE admin_tokens ADD COLUMN revoked_at INTEGER;
                    """)
        }
        return migrator
    }

    static func registerConnectorMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v3-connectors") { db in
            try db.execute(
                sql: """
                    CREATE TABLE connectors (
                        name TEXT PRIMARY KEY NOT NULL,
                        kind TEXT NOT NULL,
                        settings TEXT NOT NULL,
                        sealed_secrets TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    CREATE TABLE outbox (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        connector TEXT NOT NULL,
                        device_id TEXT NOT NULL,
                        action TEXT NOT NULL,
                        certificate TEXT,
                        previous_certificate TEXT,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at INTEGER NOT NULL,
                        last_error TEXT,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX outbox_due ON outbox(state, next_attempt_at, id);
                    CREATE INDEX outbox_by_device ON outbox(device_id, id);
                    """)
        }
    }

    static func registerLifecycleMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4-lifecycle") { db in
            try db.execute(
                sql: """
                    ALTER TABLE certificates ADD COLUMN expiry_flagged_at INTEGER;
                    ALTER TABLE devices ADD COLUMN reregistration_allowed INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX certificates_by_device_creation ON certificates(device_id, created_at);
                    CREATE TABLE rotations (
                        group_name TEXT PRIMARY KEY NOT NULL,
                        started_at INTEGER NOT NULL,
                        per_minute INTEGER NOT NULL,
                        reason TEXT NOT NULL
                    );
                    """)
        }
    }
}
