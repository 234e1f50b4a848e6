/// Keygate's schema, one versioned migration after another, shared by both backends. A migration,
/// once released, never changes: a change to the schema is a new migration at the end. The SQL is
/// written for SQLite; ``SQLDialect/postgres`` translates its few type names (64-bit integers,
/// byte strings, byte-wise text order) for PostgreSQL.
enum Schema {
    struct Migration: Sendable {
        var name: String
        var statements: [String]
    }

    static let migrations: [Migration] = [
        Migration(
            name: "v1-foundation",
            statements: [
                """
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
                )
                """,
                "CREATE INDEX certificates_by_status ON certificates(issuer, status, not_after)",
                "CREATE INDEX certificates_by_device ON certificates(device_id)",
                "CREATE INDEX certificates_by_creation ON certificates(created_at, serial)",
                "CREATE INDEX certificates_by_expiry ON certificates(not_after)",
                """
                CREATE TABLE issuers (
                    issuer TEXT PRIMARY KEY NOT NULL,
                    last_crl_number INTEGER NOT NULL DEFAULT 0,
                    revocation_revision INTEGER NOT NULL DEFAULT 0
                )
                """,
                """
                CREATE TABLE crls (
                    issuer TEXT NOT NULL,
                    number INTEGER NOT NULL,
                    this_update INTEGER NOT NULL,
                    next_update INTEGER NOT NULL,
                    der BLOB NOT NULL,
                    entry_count INTEGER NOT NULL,
                    revision INTEGER NOT NULL,
                    PRIMARY KEY (issuer, number)
                )
                """,
                """
                CREATE TABLE admin_tokens (
                    hash TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                )
                """,
                """
                CREATE TABLE audit_events (
                    seq INTEGER PRIMARY KEY NOT NULL,
                    at_ms INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    details TEXT NOT NULL,
                    previous_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                )
                """,
                "CREATE INDEX audit_by_subject ON audit_events(subject, seq)",
            ]),
        Migration(
            name: "v2-onboarding",
            statements: [
                """
                CREATE TABLE groups (
                    name TEXT PRIMARY KEY NOT NULL,
                    policy TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                )
                """,
                """
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
                )
                """,
                "CREATE INDEX devices_by_group ON devices(group_name, id)",
                "CREATE INDEX devices_by_state ON devices(state, id)",
                """
                CREATE TABLE ddk_keys (
                    device_id TEXT NOT NULL,
                    epoch INTEGER NOT NULL,
                    public_key BLOB NOT NULL,
                    PRIMARY KEY (device_id, epoch)
                )
                """,
                """
                CREATE TABLE challenges (
                    id TEXT PRIMARY KEY NOT NULL,
                    device_id TEXT NOT NULL,
                    nonce BLOB NOT NULL,
                    epoch INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    used_at INTEGER
                )
                """,
                "CREATE INDEX challenges_by_expiry ON challenges(expires_at)",
            ]),
        Migration(
            name: "v3-connectors",
            statements: [
                """
                CREATE TABLE connectors (
                    name TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL,
                    settings TEXT NOT NULL,
                    sealed_secrets TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                )
                """,
                """
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
                )
                """,
                "CREATE INDEX outbox_due ON outbox(state, next_attempt_at, id)",
                "CREATE INDEX outbox_by_device ON outbox(device_id, id)",
            ]),
        Migration(
            name: "v4-lifecycle",
            statements: [
                "ALTER TABLE certificates ADD COLUMN expiry_flagged_at INTEGER",
                "ALTER TABLE devices ADD COLUMN reregistration_allowed INTEGER NOT NULL DEFAULT 0",
                "CREATE INDEX certificates_by_device_creation ON certificates(device_id, created_at)",
                """
                CREATE TABLE rotations (
                    group_name TEXT PRIMARY KEY NOT NULL,
                    started_at INTEGER NOT NULL,
                    per_minute INTEGER NOT NULL,
                    reason TEXT NOT NULL
                )
                """,
            ]),
        Migration(
            name: "v5-bounded-challenges",
            statements: [
                "CREATE INDEX challenges_by_device ON challenges(device_id, expires_at)",
            ]),
        Migration(
            name: "v6-admin-token-roles",
            statements: [
                "ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'",
                "ALTER TABLE admin_tokens ADD COLUMN expires_at INTEGER",
                "ALTER TABLE admin_tokens ADD COLUMN revoked_at INTEGER",
            ]),
        Migration(
            name: "v7-outbox-leases",
            statements: [
                // A node delivering an item holds it until `leased_until`; a node that dies mid-delivery
                // leaves it to the others once the lease runs out.
                "ALTER TABLE outbox ADD COLUMN leased_by TEXT",
                "ALTER TABLE outbox ADD COLUMN leased_until INTEGER NOT NULL DEFAULT 0",
            ]),
        Migration(
            name: "v8-periodic-runs",
            statements: [
                // Periodic work (expiry scan, CRL rebuild, OCSP refresh) runs once per tick across every
                // node sharing the database: a node runs a task only when it moves `last_run` forward.
                """
                CREATE TABLE periodic_runs (
                    task TEXT PRIMARY KEY NOT NULL,
                    last_run INTEGER NOT NULL,
                    node TEXT NOT NULL
                )
                """,
            ]),
        Migration(
            name: "v9-status-revisions",
            statements: [
                // The issuer's revocation revision at which a certificate's status last changed: a node
                // that sees the revision move drops (and signs again) the OCSP answers of exactly
                // those certificates.
                "ALTER TABLE certificates ADD COLUMN status_revision INTEGER NOT NULL DEFAULT 0",
                "CREATE INDEX certificates_by_status_revision ON certificates(issuer, status_revision)",
            ]),
        Migration(
            name: "v10-node-heartbeats",
            statements: [
                // Each node's last heartbeat: allowances shared by the nodes are split over the live ones.
                """
                CREATE TABLE nodes (
                    name TEXT PRIMARY KEY NOT NULL,
                    last_seen INTEGER NOT NULL
                )
                """,
            ]),
        Migration(
            name: "v11-dashboard",
            statements: [
                // Dashboard sessions, kept in the database so that every node behind a load balancer
                // accepts them and a restart does not sign operators out. Only the hash of the cookie is kept.
                """
                CREATE TABLE ui_sessions (
                    id_hash TEXT PRIMARY KEY NOT NULL,
                    token_hash TEXT NOT NULL,
                    csrf TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL
                )
                """,
                "CREATE INDEX ui_sessions_by_token ON ui_sessions(token_hash)",
                // The audit page filters by actor and action, newest first; the overview counts
                // issuances and renewals by time.
                "CREATE INDEX audit_by_action ON audit_events(action, at_ms, seq)",
                "CREATE INDEX audit_by_actor ON audit_events(actor, at_ms, seq)",
            ]),
    ]
}
