public import Foundation
public import KeygateDomain

/// A signed-in dashboard session. The cookie's value is never stored, only its SHA-256 hash; the
/// session is tied to the admin token it was opened with, so revoking the token ends it.
public struct DashboardSession: Sendable, Hashable {
    /// SHA-256 (hex) of the cookie's value.
    public var idHash: String
    /// The hash of the admin token the operator signed in with.
    public var tokenHash: String
    /// The token every form of this session carries.
    public var csrf: String
    /// When the operator signed in.
    public var createdAt: Date
    /// When the session ends, whatever happens.
    public var expiresAt: Date

    /// Creates a session record.
    public init(idHash: String, tokenHash: String, csrf: String, createdAt: Date, expiresAt: Date) {
        self.idHash = idHash
        self.tokenHash = tokenHash
        self.csrf = csrf
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// Which audit events a page of the audit log shows.
public struct AuditFilter: Sendable, Hashable {
    /// Only events about this subject (a device ID, a serial, a group…).
    public var subject: String?
    /// Only events by this actor (`admin:NAME`, `device:ID`, `keygate`…).
    public var actor: String?
    /// Only events with this action (`device.quarantined`…).
    public var action: String?
    /// Keyset paging: events older than this sequence number.
    public var before: Int64?
    /// At most this many events (clamped to 1...1,000).
    public var limit: Int

    /// Creates a filter; without arguments, the newest 50 events.
    public init(subject: String? = nil, actor: String? = nil, action: String? = nil, before: Int64? = nil, limit: Int = 50)
    {
        self.subject = subject
        self.actor = actor
        self.action = action
        self.before = before
        self.limit = limit
    }
}

/// The outbox of one connector as the dashboard shows it.
public struct OutboxHealth: Sendable, Hashable {
    /// Items waiting for their first call.
    public var pending: Int = 0
    /// Items waiting after at least one failed call.
    public var retrying: Int = 0
    /// Items that gave up (a retry puts them back).
    public var deadLetters: Int = 0
    /// The newest error Azure (or the network) answered an undelivered item, and when.
    public var lastError: String?
    /// When ``lastError`` was recorded.
    public var lastErrorAt: Date?

    /// An empty record.
    public init() {}
}

/// What the dashboard reads that no other part of Keygate needs: sessions, device search, filtered
/// audit pages and the overview's counts. Every query is keyed by an index so that pages stay fast
/// with hundreds of thousands of devices and certificates.
public protocol DashboardStore: Sendable {
    /// Stores a new session and deletes the expired ones.
    func createDashboardSession(_ session: DashboardSession) async throws
    /// The session whose cookie hashes to `idHash`, if it has not expired at `now`.
    func dashboardSession(idHash: String, now: Date) async throws -> DashboardSession?
    /// Ends a session (sign-out).
    func deleteDashboardSession(idHash: String) async throws
    /// A page of devices in ID order: IDs starting with `prefix` (any when `nil`), in `state` and `group`
    /// when given, after `after`.
    func devices(prefix: String?, state: Device.State?, group: String?, after: String?, limit: Int) async throws
        -> [Device]
    /// Audit events matching `filter`, newest first.
    func auditEvents(matching filter: AuditFilter) async throws -> [AuditEvent]
    /// How many audit events with each of `actions` happened since `since`, by bucket of `bucket`
    /// seconds (the key is the bucket's start, in seconds since 1970).
    func activity(actions: [String], since: Date, bucket: Int) async throws -> [String: [Int64: Int]]
    /// How many active certificates expire between `now` and each of `horizons` seconds later.
    func activeCertificatesExpiring(now: Date, within horizons: [TimeInterval]) async throws -> [Int]
    /// A page of `issuer`'s certificates in `status`, soonest expiry first, after the certificate `after`
    /// (keyset on expiry and serial: the status index serves it).
    func certificates(issuer: String, status: CertificateRecord.Status, after: String?, limit: Int) async throws
        -> [CertificateRecord]
    /// The undelivered outbox per connector.
    func outboxHealth() async throws -> [String: OutboxHealth]
}
