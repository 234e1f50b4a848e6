public import Foundation
import KeygateAzure
import KeygateDomain
import KeygatePKI
public import KeygateStore
public import Logging
import Synchronization
public import ServiceLifecycle

/// Delivers the outbox to Azure (a ServiceLifecycle service): due items oldest first, one at a time
/// per device, at most `concurrencyPerConnector` calls at once per connector (so Keygate stays under
/// Azure's quotas), exponential backoff with jitter that honours Retry-After, a dead letter with the
/// last error after `maximumAttempts`, or at once when Azure refuses for good (`azureRefused`,
/// `azureUnauthorized`: Azure's error code and message are kept as the item's last error). State is in
/// the database: a restart carries on where it stopped.
public struct OutboxDispatcher: Service {
    /// How the dispatcher retries and paces deliveries.
    public struct Policy: Sendable {
        /// Attempts before a transient failure becomes a dead letter.
        public var maximumAttempts = 12
        /// Seconds before the second attempt; doubled for each further one.
        public var baseDelay: TimeInterval = 1
        /// The longest wait between attempts, in seconds.
        public var maximumDelay: TimeInterval = 300
        /// Calls at once per connector.
        public var concurrencyPerConnector = 4
        /// Seconds between looks at the outbox when nothing was due.
        public var pollInterval: TimeInterval = 0.25
        /// Due items taken at a time (a multiple of ten: DPS bulk operations carry ten enrollments).
        public var batch = 100
        /// Seconds a node holds the items it took (longer than an Azure call with its retries takes): a
        /// node that dies mid-delivery leaves them to the others once this runs out.
        public var leaseSeconds: TimeInterval = 60

        /// The defaults above.
        public init() {}

        /// The wait before attempt `attempt + 1`: `base × 2^attempt` with ±50 % jitter, at least Retry-After.
        func delay(afterAttempt attempt: Int, retryAfter: Int?) -> TimeInterval {
            let exponential = min(maximumDelay, baseDelay * pow(2, Double(min(attempt, 20))))
            return max(Double(retryAfter ?? 0), exponential * Double.random(in: 0.5...1.5))
        }
    }

    let store: any ServerStore
    let secrets: SecretBox?
    let policy: Policy
    let logger: Logger
    let metrics: KeygateMetrics?
    /// This node's name on the leases it takes.
    let node: String
    private let clients = ClientCache()

    /// A dispatcher for `store`'s outbox; `secrets` opens the connectors' credentials; `metrics` (the
    /// server's) counts deliveries, failures and dead letters.
    public init(
        store: any ServerStore, secrets: SecretBox?, policy: Policy = Policy(), logger: Logger,
        metrics: KeygateMetrics? = nil, node: String = NodeIdentity.current
    ) {
        self.node = node
        self.store = store
        self.secrets = secrets
        self.policy = policy
        self.logger = logger
        self.metrics = metrics
    }

    /// Delivers until the service group shuts down.
    /// At graceful shutdown (SIGTERM) no call is cut off: calls under way finish and are recorded,
    /// items not started yet go back to the queue for the other nodes, then the service returns.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let delivered = (try? await deliverDue()) ?? 0
            if delivered == 0, !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: .seconds(policy.pollInterval))
            }
        }
    }

    /// Delivers what is due now; answers how many items it tried.
    @discardableResult
    public func deliverDue(now: Date = Date()) async throws -> Int {
        // Leased to this node, so another node sharing the database never delivers the same items.
        let due = try await store.claimOutboxItems(
            now: now, limit: policy.batch, node: node, leaseFor: policy.leaseSeconds)
        guard !due.isEmpty else { return 0 }
        // A connector changed through any node (settings, credentials, removal) is opened again.
        if let current = try? await store.connectors() {
            clients.keep(current)
        }
        let byConnector = Dictionary(grouping: due, by: \.connector)
        await withTaskGroup(of: Void.self) { group in
            for (name, items) in byConnector {
                group.addTask {
                    // DPS enrollments travel up to ten per call (one bulk operation, no read first);
                    // everything else one call per item. A device appears once per call.
                    let client = try? await client(for: name)
                    var calls: [[OutboxItem]] = []
                    var bulk: [OutboxItem] = []
                    var inBulk = Set<String>()
                    for item in items {
                        if let client, client.isBulkEnrollment(item), !inBulk.contains(item.deviceID) {
                            bulk.append(item)
                            inBulk.insert(item.deviceID)
                            if bulk.count == DPSServiceClient.bulkLimit {
                                calls.append(bulk)
                                bulk = []
                                inBulk = []
                            }
                        } else {
                            calls.append([item])
                        }
                    }
                    if !bulk.isEmpty { calls.append(bulk) }
                    // No more calls than the connector's pace allows in half the lease: the rest go
                    // back to the queue at once (a slow pace must not hold items past their lease).
                    if let client {
                        let budget = max(1, Int(client.callsPerMinuteHere * policy.leaseSeconds / 60 / 2))
                        if calls.count > budget {
                            let spare = calls[budget...].flatMap { $0.map(\.id) }
                            calls.removeLast(calls.count - budget)
                            try? await store.releaseOutboxItems(ids: spare, node: node)
                        }
                    }
                    // Bounded per connector: a few calls at a time, in order of due time. At graceful
                    // shutdown no new call starts; the items of calls not started go back to the queue.
                    let started = await withTaskGroup(of: Void.self) { running in
                        var next = 0
                        while next < min(policy.concurrencyPerConnector, calls.count), !Task.isShuttingDownGracefully {
                            let call = calls[next]
                            running.addTask { await deliver(call) }
                            next += 1
                        }
                        while await running.next() != nil, next < calls.count, !Task.isShuttingDownGracefully {
                            let call = calls[next]
                            running.addTask { await deliver(call) }
                            next += 1
                        }
                        await running.waitForAll()
                        return next
                    }
                    if started < calls.count {
                        try? await store.releaseOutboxItems(ids: calls[started...].flatMap { $0.map(\.id) }, node: node)
                    }
                }
            }
        }
        return due.count
    }

    /// One call: a single item, or a bulk operation of DPS enrollments (each item then completes or
    /// fails by DPS's answer for it; a failed call fails them all, to be retried).
    private func deliver(_ call: [OutboxItem]) async {
        guard let first = call.first, let client = clients[first.connector], client.isBulkEnrollment(first) else {
            for item in call { await deliver(item) }
            return
        }
        let refusals: [Int64: KeygateError]
        do {
            refusals = try await client.deliverBulk(call)
        } catch {
            for item in call { await failed(item, error) }
            return
        }
        for item in call {
            if let refusal = refusals[item.id] {
                await failed(item, refusal)
            } else {
                do {
                    try await recording { try await store.completeOutboxItem(id: item.id, at: Date()) }
                    metrics?.outboxDelivered(connector: item.connector, action: item.action.rawValue)
                } catch {
                    await failed(item, error)
                }
            }
        }
    }

    private func deliver(_ item: OutboxItem) async {
        do {
            let client = try await client(for: item.connector)
            if item.resumed, try await client.alreadyDelivered(item) {
                logger.info("outbox item \(item.id) had reached Azure before its node stopped; not written again")
                try await recording { try await store.completeOutboxItem(id: item.id, at: Date()) }
                metrics?.outboxDelivered(connector: item.connector, action: item.action.rawValue)
                return
            }
            if let idScope = try await client.deliver(try await withCertificates(item)) {
                var settings = client.connector.settings
                settings.idScope = idScope
                try await store.updateConnectorSettings(name: item.connector, settings: settings)
                clients.forget(item.connector)
            }
            try await recording { try await store.completeOutboxItem(id: item.id, at: Date()) }
            metrics?.outboxDelivered(connector: item.connector, action: item.action.rawValue)
        } catch {
            await failed(item, error)
        }
    }

    /// Records a failed attempt: retried later with backoff, or dead-lettered.
    private func failed(_ item: OutboxItem, _ error: any Error) async {
        do {
            let keygateError = error as? KeygateError
            let attempts = item.attempts + 1
            // Azure's permanent refusals (a 4xx other than 408/409/412/429, refused credentials) will not
            // change by themselves: dead-lettered at once, for the operator to fix and `outbox retry`.
            let permanent = keygateError.map { Self.permanentCodes.contains($0.code) } ?? false
            let deadLetter = permanent || attempts >= policy.maximumAttempts
            metrics?.outboxFailed(
                connector: item.connector, code: keygateError?.code.rawValue ?? "other", deadLetter: deadLetter)
            let next = Date() + policy.delay(afterAttempt: item.attempts, retryAfter: keygateError?.retryAfter)
            let message = keygateError.map { "\($0.code.rawValue): \($0.message)" } ?? "\(error)"
            logger.warning(
                "outbox item \(item.id) (\(item.action.rawValue) \(item.deviceID) via \(item.connector)) failed: \(message)"
            )
            try? await recording {
                try await store.failOutboxItem(
                    id: item.id, error: message, nextAttemptAt: next, deadLetter: deadLetter,
                    audit: deadLetter
                        ? .init(
                            actor: "system", action: "outbox.deadLetter", subject: item.deviceID,
                            details: ["id": "\(item.id)", "connector": item.connector, "error": message])
                        : nil)
            }
        }
    }

    /// Records a delivery's outcome, retrying while the database is unavailable (it holds the item's
    /// lease meanwhile): once the database is back the outcome lands at once, instead of the item
    /// waiting for its lease to run out and being looked at again by another node.
    private func recording(_ body: () async throws -> Void) async throws {
        let deadline = Date() + policy.leaseSeconds
        while true {
            do {
                return try await body()
            } catch let error as KeygateError where error.code == .storeUnavailable && Date() < deadline {
                try await Task.sleep(for: .seconds(Double(error.retryAfter ?? 1)))
            }
        }
    }

    /// The refusals that dead-letter an item at its first attempt.
    static let permanentCodes: Set<KeygateError.Code> = [.azureRefused, .azureUnauthorized]

    /// A disable or enable writes the enrollment whole, so it carries the device's certificates: the
    /// newest as primary, the one before as secondary while it is valid. Items queued without them
    /// get them here.
    private func withCertificates(_ item: OutboxItem) async throws -> OutboxItem {
        guard item.action == .disable || item.action == .enable, item.certificate == nil else { return item }
        let issued = try await store.certificates(matching: .init(deviceID: item.deviceID, limit: 1000))
        guard let newest = issued.last else { return item }
        var filled = item
        filled.certificate = newest.pem
        if issued.count > 1, issued[issued.count - 2].notAfter > Date() {
            filled.previousCertificate = issued[issued.count - 2].pem
        }
        return filled
    }

    private func client(for name: String) async throws -> ConnectorClient {
        if let cached = clients[name] { return cached }
        guard let connector = try await store.connector(named: name) else {
            throw KeygateError(.connectorNotFound, "no connector \(name)")
        }
        let client = try ConnectorClient(connector, secrets: secrets)
        clients[name] = client
        return client
    }
}

/// The connector clients the dispatcher opened, by connector name (a connector that learned its ID
/// scope is forgotten and opened again).
private final class ClientCache: Sendable {
    private let clients = Mutex<[String: ConnectorClient]>([:])

    subscript(name: String) -> ConnectorClient? {
        get { clients.withLock { $0[name] } }
        set { clients.withLock { $0[name] = newValue } }
    }

    func forget(_ name: String) { clients.withLock { $0[name] = nil } }

    /// Forgets the clients of connectors that changed or went away.
    func keep(_ current: [Connector]) {
        let byName = Dictionary(current.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        clients.withLock { clients in
            for (name, client) in clients where byName[name] != client.connector { clients[name] = nil }
        }
    }
}
