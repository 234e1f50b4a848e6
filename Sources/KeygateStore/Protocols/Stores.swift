public import Foundation
public import KeygateDomain
public import KeygatePKI

/// Certificates Keygate issued, and their revocation state.
public protocol CertificateRecordStore: Sendable {
    /// Records a newly issued certificate and its audit event in one transaction.
    func insertCertificate(_ record: CertificateRecord, audit: AuditEvent.Draft) async throws
    func certificate(serial: String) async throws -> CertificateRecord?
    func certificates(matching query: CertificateQuery) async throws -> [CertificateRecord]
    /// Revokes (or holds) a certificate and records the audit event in one transaction.
    /// Throws `certificateNotFound` or `alreadyRevoked`.
    func revokeCertificate(
        serial: String, reason: RevocationReason, at date: Date, audit: AuditEvent.Draft
    ) async throws -> CertificateRecord
    /// Every revoked or held certificate of `issuer` that has not expired before `notAfterSince`.
    func revokedEntries(issuer: String, notAfterSince: Date) async throws -> [RevokedEntry]
    /// Counts by status, for metrics and `ca show`.
    func certificateCounts() async throws -> [CertificateRecord.Status: Int]
}

/// The published CRLs: numbers must grow across restarts and across nodes.
public protocol RevocationListStore: Sendable {
    /// Reserves the next CRL number for `issuer` (1, 2, ...).
    func nextCRLNumber(issuer: String) async throws -> Int64
    func saveCRL(_ crl: PublishedCRL) async throws
    func latestCRL(issuer: String) async throws -> PublishedCRL?
    /// A counter that grows with every revocation under `issuer`; a CRL built at revision `r`
    /// is stale once the counter passes `r`.
    func revocationRevision(issuer: String) async throws -> Int64
}

/// A signed CRL as served at the distribution point.
public struct PublishedCRL: Sendable, Hashable {
    /// The issuing CA's subject, as in ``CertificateRecord/issuer``.
    public var issuer: String
    /// The CRL number, from ``RevocationListStore/nextCRLNumber(issuer:)``.
    public var number: Int64
    /// When the CRL was issued (whole seconds).
    public var thisUpdate: Date
    /// When relying parties should fetch a newer one (whole seconds).
    public var nextUpdate: Date
    /// The signed CRL in DER, as served.
    public var der: [UInt8]
    /// How many revoked or held certificates it lists.
    public var entryCount: Int
    /// The issuer's revocation revision the CRL reflects.
    public var revision: Int64

    /// Creates a record of a published CRL.
    public init(
        issuer: String, number: Int64, thisUpdate: Date, nextUpdate: Date, der: [UInt8], entryCount: Int,
        revision: Int64
    ) {
        self.revision = revision
        self.issuer = issuer
        self.number = number
        self.thisUpdate = thisUpdate
        self.nextUpdate = nextUpdate
        self.der = der
        self.entryCount = entryCount
    }
}

/// Admin API credentials, stored hashed.
public protocol AdminTokenStore: Sendable {
    /// Stores a token (its hash) with its audit event; `conflict` when a usable token has the name.
    func addAdminToken(_ token: AdminToken, audit: AuditEvent.Draft) async throws
    /// The token with this hash, if any (revoked and expired ones included).
    func adminToken(hash: String) async throws -> AdminToken?
    /// Every token, oldest first (revoked and expired ones included).
    func adminTokens() async throws -> [AdminToken]
    /// Revokes the usable tokens named `name`, with the audit event; `tokenNotFound` when none is.
    func revokeAdminToken(name: String, at date: Date, audit: AuditEvent.Draft) async throws
}

/// The hash-chained audit log.
public protocol AuditStore: Sendable {
    func appendAudit(_ draft: AuditEvent.Draft) async throws -> AuditEvent
    func auditEvents(subject: String?, since: Date?, limit: Int) async throws -> [AuditEvent]
    /// Entries after sequence number `after`, oldest first (for exports).
    func auditEvents(after: Int64, limit: Int) async throws -> [AuditEvent]
    /// The newest entry's sequence number and hash (unsigned), for a checkpoint.
    func auditHead() async throws -> AuditCheckpoint
    /// Keys the chain with `key` for every later append (and for verification).
    func useAuditKey(_ key: AuditChainKey)
    /// Walks the chain and checks `checkpoints` against it; returns the first problem, or `nil`.
    func verifyAuditChain(checkpoints: [AuditCheckpoint]) async throws -> AuditChainBreak?
}

extension AuditStore {
    /// Walks the chain without checkpoints.
    public func verifyAuditChain() async throws -> AuditChainBreak? { try await verifyAuditChain(checkpoints: []) }
}

/// Where the audit chain first fails to verify.
public struct AuditChainBreak: Sendable, Hashable, Error {
    /// The sequence number of the first entry that is missing or fails to verify.
    public var sequence: Int64
    /// What is wrong: the entry is missing, unreadable, not linked to its predecessor, or altered.
    public var reason: String

    /// Creates a break report.
    public init(sequence: Int64, reason: String) {
        self.sequence = sequence
        self.reason = reason
    }
}

/// What several nodes sharing one database coordinate through it.
public protocol ClusterStore: Sendable {
    /// Claims this run of a periodic `task` for `node`: true when no node ran it within `interval`
    /// before `now` (the claim is atomic, so exactly one node of many gets each tick).
    func claimPeriodicRun(task: String, interval: TimeInterval, now: Date, node: String) async throws -> Bool
    /// Every issuer's revocation revision: a node drops answers it signed from statuses once the
    /// revision of their issuer moves (a revocation made through any node).
    func revocationRevisions() async throws -> [String: Int64]
    /// The certificates of `issuer` whose status changed after revision `after` (at most `limit`, by
    /// revision), each marked `local` when the change was made through this store (this node).
    func statusChanges(issuer: String, after: Int64, limit: Int) async throws -> [StatusChange]
    /// Records that `node` is alive at `now` and answers how many nodes were seen within `window`
    /// seconds (this one included); nodes silent for a day are forgotten.
    func heartbeat(node: String, now: Date, window: TimeInterval) async throws -> Int
    /// `sqlite` or `postgres`.
    var backendKind: String { get }
}

/// Everything the server needs from persistence.
public typealias ServerStore = CertificateRecordStore & RevocationListStore & AdminTokenStore & AuditStore
    & OnboardingStore & ConnectorStore & LifecycleStore & ClusterStore & DashboardStore

/// Connectors (where groups enrol their devices in Azure) and the outbox of Azure changes.
public protocol ConnectorStore: Sendable {
    func addConnector(_ connector: Connector, audit: AuditEvent.Draft) async throws
    func updateConnectorSettings(name: String, settings: Connector.Settings) async throws
    /// Replaces a connector's settings with the audit event, in one transaction; `connectorNotFound`
    /// for an unknown name.
    func updateConnectorSettings(name: String, settings: Connector.Settings, audit: AuditEvent.Draft) async throws
    /// Replaces a connector's sealed secrets (sealed again, same values) with the audit event.
    func updateConnectorSecrets(name: String, sealedSecrets: [String: String], audit: AuditEvent.Draft) async throws
    func connector(named name: String) async throws -> Connector?
    func connectors() async throws -> [Connector]
    /// Refuses (`connectorInUse`) while a group names it.
    func removeConnector(name: String, audit: AuditEvent.Draft) async throws

    func enqueue(_ item: OutboxItem, audit: AuditEvent.Draft?) async throws
    /// Pending, due items, oldest first, at most one per device.
    func dueOutboxItems(now: Date, limit: Int) async throws -> [OutboxItem]
    /// Like ``dueOutboxItems(now:limit:)``, but leases the items to `node` until `now + leaseFor`: no
    /// other node (or process) gets them until the lease runs out or the item completes or fails.
    func claimOutboxItems(now: Date, limit: Int, node: String, leaseFor: TimeInterval) async throws -> [OutboxItem]
    /// Gives back items `node` took but will not deliver now: they are due again for any node.
    func releaseOutboxItems(ids: [Int64], node: String) async throws
    func completeOutboxItem(id: Int64, at date: Date) async throws
    func failOutboxItem(id: Int64, error: String, nextAttemptAt: Date, deadLetter: Bool, audit: AuditEvent.Draft?)
        async throws
    func outboxItems(state: OutboxItem.State?, deviceID: String?, limit: Int) async throws -> [OutboxItem]
    func outboxCounts() async throws -> [OutboxItem.State: Int]
    /// Puts a dead letter back in the queue.
    func retryOutboxItem(id: Int64, audit: AuditEvent.Draft) async throws -> OutboxItem
    /// Whether the device's latest enrollment reached Azure (`nil`: it has none).
    func enrollmentConfirmed(deviceID: String) async throws -> Bool?
}

/// A certificate whose status changed (revoked, held, released) at a revocation revision.
public struct StatusChange: Sendable, Hashable {
    /// The certificate's serial (lower-case hex).
    public var serial: String
    /// The issuer's revocation revision of the change.
    public var revision: Int64
    /// Whether this node made the change (and so already signed its OCSP answers again).
    public var local: Bool

    /// Creates a change.
    public init(serial: String, revision: Int64, local: Bool) {
        self.serial = serial
        self.revision = revision
        self.local = local
    }
}
