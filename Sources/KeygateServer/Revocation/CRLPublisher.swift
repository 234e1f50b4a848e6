public import Foundation
import KeygatePKI
public import KeygateStore
public import Logging
public import ServiceLifecycle
import X509

/// Keeps the issuing CA's CRL current.
///
/// A CRL is rebuilt when a revocation happened since it was built (the store's revocation
/// revision moved), or when it is past half its validity; never once per revocation. Concurrent
/// callers share one rebuild. Entries of certificates that expired before the previous CRL was
/// built are dropped, so an expired certificate appears in exactly one CRL after its expiry.
public actor CRLPublisher {
    let store: any ServerStore
    let builder: CRLBuilder
    let issuer: String
    let validity: TimeInterval
    let metrics: KeygateMetrics
    private var cached: PublishedCRL?
    private var inFlight: Task<PublishedCRL, any Error>?

    init(store: any ServerStore, authority: CertificateAuthority, validity: TimeInterval, metrics: KeygateMetrics) {
        self.store = store
        self.builder = CRLBuilder(authority: authority)
        self.issuer = authority.certificate.subject.description
        self.validity = validity
        self.metrics = metrics
    }

    /// The current CRL, rebuilding it first if it is stale.
    public func current(now: Date = Date()) async throws -> PublishedCRL {
        let revision = try await store.revocationRevision(issuer: issuer)
        if cached == nil { cached = try await store.latestCRL(issuer: issuer) }
        if let cached, cached.revision >= revision, now < cached.thisUpdate + validity / 2 {
            metrics.crlObserved(age: now.timeIntervalSince(cached.thisUpdate))
            return cached
        }
        if let inFlight { return try await inFlight.value }
        let previous = cached
        let task = Task { try await self.rebuild(revision: revision, previous: previous, now: now) }
        inFlight = task
        defer { inFlight = nil }
        let crl = try await task.value
        cached = crl
        metrics.crlObserved(age: 0, entries: crl.entryCount)
        return crl
    }

    private func rebuild(revision: Int64, previous: PublishedCRL?, now: Date) async throws -> PublishedCRL {
        let thisUpdate = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let entries = try await store.revokedEntries(
            issuer: issuer, notAfterSince: previous?.thisUpdate ?? .distantPast)
        let number = try await store.nextCRLNumber(issuer: issuer)
        let nextUpdate = thisUpdate + validity
        let der = try await builder.build(
            number: number, thisUpdate: thisUpdate, nextUpdate: nextUpdate, entries: entries)
        let crl = PublishedCRL(
            issuer: issuer, number: number, thisUpdate: thisUpdate, nextUpdate: nextUpdate, der: der,
            entryCount: entries.count, revision: revision)
        try await store.saveCRL(crl)
        return crl
    }
}

/// Refreshes the CRL on a schedule, so it never passes `nextUpdate` even when nobody fetches it,
/// and within one tick of a revocation (a tick only reads the revocation counter unless it moved).
public struct CRLRefreshService: Service {
    let publisher: CRLPublisher
    let interval: Duration
    let logger: Logger

    public init(publisher: CRLPublisher, interval: Duration = .seconds(60), logger: Logger) {
        self.publisher = publisher
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let publisher = self.publisher
        let interval = self.interval
        let logger = self.logger
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    _ = try await publisher.current()
                } catch {
                    logger.warning("CRL refresh failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
