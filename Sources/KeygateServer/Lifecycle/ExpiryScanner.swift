public import Foundation
public import KeygateDomain
import KeygateStore
public import Logging
import ServiceLifecycle
import Synchronization

/// Finds device certificates close to expiry that no renewal replaced: marks each once (with an
/// audit event `certificate.expiring`), and keeps `keygate_certificates_expiring` current
/// (run every minute by ``PeriodicService/expiryScan(_:every:)``).
/// `keygate cert list --expiring 7d` lists the same certificates.
public struct ExpiryScanner: Sendable {
    let service: CertificateService
    /// How close to expiry a certificate must be to count.
    let window: TimeInterval
    let logger: Logger

    /// Creates a scanner that counts certificates within `window` of expiry (default 7 days).
    public init(service: CertificateService, window: TimeInterval = 7 * 86_400, logger: Logger) {
        self.service = service
        self.window = window
        self.logger = logger
    }

    /// One pass; returns the certificates marked by it and the count of all marked.
    @discardableResult
    public func scan(now: Date = Date()) async throws -> (newlyFlagged: [CertificateRecord], flagged: Int) {
        let result = try await service.store.flagExpiring(before: now + window, now: now)
        for record in result.newlyFlagged {
            _ = try await service.store.appendAudit(
                .init(
                    actor: "system", action: "certificate.expiring", subject: record.serial,
                    details: [
                        "deviceId": record.deviceID ?? "",
                        "notAfter": ISO8601DateFormatter().string(from: record.notAfter),
                    ]))
        }
        service.metrics.expiringObserved(result.flagged)
        if !result.newlyFlagged.isEmpty {
            logger.notice(
                "certificates close to expiry and not renewed",
                metadata: ["new": "\(result.newlyFlagged.count)", "total": "\(result.flagged)"])
        }
        return result
    }
}

/// Background work done on a schedule (a ServiceLifecycle service): the CRL refresh, OCSP answers
/// signed again, the expiry scan. A failed pass is logged and the next one comes at the next tick.
struct PeriodicService: Service {
    let name: String
    let interval: Duration
    let logger: Logger
    let work: @Sendable () async throws -> Void
    /// Runs `work` once more at graceful shutdown.
    let finalRun: Bool
    /// When set, a tick runs only on the node that claims it in the shared database, so work done for
    /// the whole deployment runs once per tick however many nodes there are.
    let claim: (store: any ClusterStore, task: String)?

    /// Creates a service that runs `work` every `interval` until graceful shutdown (and once more
    /// then, with `finalRun`).
    public init(
        _ name: String, every interval: Duration, finalRun: Bool = false,
        claim: (store: any ClusterStore, task: String)? = nil, logger: Logger,
        work: @escaping @Sendable () async throws -> Void
    ) {
        self.claim = claim
        self.name = name
        self.interval = interval
        self.finalRun = finalRun
        self.logger = logger
        self.work = work
    }

    /// Runs `work`, then sleeps `interval`, until cancelled; failures are logged, not thrown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    if try await claimed() { try await work() }
                } catch {
                    logger.warning("\(name) failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
        guard finalRun else { return }
        // A task of its own: the service's task is cancelled by now.
        let service = self
        await Task {
            do {
                try await service.work()
            } catch {
                service.logger.warning("\(service.name) failed at shutdown", metadata: ["error": "\(error)"])
            }
        }.value
    }
}

extension PeriodicService {
    /// Whether this node runs this tick (always, without a claim).
    private func claimed() async throws -> Bool {
        guard let claim else { return true }
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        return try await claim.store.claimPeriodicRun(
            task: claim.task, interval: seconds, now: Date(), node: NodeIdentity.current)
    }

    /// Keeps the CRL current: it never passes `nextUpdate` even when nobody fetches it, and follows a
    /// revocation within one tick (a tick only reads the revocation counter unless it moved).
    /// Every node serves the newest CRL in the database; one node per tick across the deployment (the
    /// one that claims it) rebuilds it when it is stale.
    static func crlRefresh(
        _ service: CertificateService, store: any ClusterStore, every interval: Duration = .seconds(5),
        logger: Logger
    ) -> PeriodicService {
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        return PeriodicService("CRL refresh", every: interval, logger: logger) {
            await service.crl.adoptNewer()
            if try await store.claimPeriodicRun(
                task: "crl-refresh", interval: seconds, now: Date(), node: NodeIdentity.current)
            {
                _ = try await service.crl.current()
            }
        }
    }

    /// Signs kept OCSP answers again before they go stale.
    static func ocspRefresh(
        _ service: CertificateService, every interval: Duration = .seconds(30), logger: Logger
    ) -> PeriodicService {
        PeriodicService("OCSP refresh", every: interval, logger: logger) { await service.refreshOCSPAnswers() }
    }

    /// Signs the audit chain's head into the checkpoint file every `interval` and at shutdown.
    static func auditCheckpoints(
        _ audit: AuditService, store: any ClusterStore, every interval: Duration, logger: Logger
    ) -> PeriodicService {
        PeriodicService(
            "audit checkpoint", every: interval, finalRun: true, claim: (store, "audit-checkpoint"), logger: logger
        ) {
            try await audit.checkpoint()
        }
    }

    /// Runs the expiry scanner.
    static func expiryScan(
        _ scanner: ExpiryScanner, store: any ClusterStore, every interval: Duration = .seconds(60)
    ) -> PeriodicService {
        PeriodicService("expiry scan", every: interval, claim: (store, "expiry-scan"), logger: scanner.logger) {
            try await scanner.scan()
        }
    }

    /// Follows changes made through other nodes sharing the database: when an issuer's revocation
    /// revision moved, the OCSP answers this node keeps for the certificates another node changed are
    /// dropped and signed again (changes this node made were handled when it made them).
    static func clusterWatch(
        _ service: CertificateService, store: any ClusterStore, every interval: Duration = .milliseconds(500),
        logger: Logger
    ) -> PeriodicService {
        let seen = RevisionTracker()
        return PeriodicService("cluster watch", every: interval, logger: logger) {
            try await followRevocations(service, store: store, seen: seen)
        }
    }

    /// Tells the other nodes this one is alive and learns how many are (every 2 s; a node silent for
    /// 10 s is no longer counted), so that shared Azure allowances are split over the live nodes.
    static func heartbeat(store: any ClusterStore, every interval: Duration = .seconds(2), logger: Logger)
        -> PeriodicService
    {
        PeriodicService("heartbeat", every: interval, logger: logger) {
            ClusterNodes.set(
                try await store.heartbeat(node: NodeIdentity.current, now: Date(), window: 10))
        }
    }

    /// One look at the revocation revisions (see ``clusterWatch(_:store:every:logger:)``).
    static func followRevocations(_ service: CertificateService, store: any ClusterStore, seen: RevisionTracker)
        async throws
    {
        let limit = 10_000
        let revisions = try await store.revocationRevisions()
        // The first look only records where things stand: what this node keeps was signed after it.
        guard seen.started else { return seen.start(revisions) }
        for (issuer, current) in revisions {
            // An issuer first revoking after this node started begins at revision 0.
            let last = seen.last(issuer: issuer) ?? 0
            guard current > last else { continue }
            let changes = try await store.statusChanges(issuer: issuer, after: last, limit: limit)
            if changes.count >= limit {
                // Too many to follow one by one: start over.
                service.ocspCache.invalidateAll()
                seen.set(issuer: issuer, current)
                continue
            }
            await service.statusChangedElsewhere(changes.filter { !$0.local }.map(\.serial))
            seen.set(issuer: issuer, current)
        }
    }
}

/// The revocation revision a node last followed, per issuer.
final class RevisionTracker: Sendable {
    private let revisions = Mutex<[String: Int64]?>(nil)

    var started: Bool { revisions.withLock { $0 != nil } }

    func start(_ current: [String: Int64]) { revisions.withLock { $0 = current } }

    func last(issuer: String) -> Int64? { revisions.withLock { $0?[issuer] } }

    func set(issuer: String, _ revision: Int64) { revisions.withLock { $0?[issuer] = revision } }
}
