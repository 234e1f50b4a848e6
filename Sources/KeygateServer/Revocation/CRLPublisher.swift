public import Foundation
import KeygatePKI
public import KeygateStore
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
    private var inFlight: (task: Task<PublishedCRL, any Error>, revision: Int64)?

    init(store: any ServerStore, authority: CertificateAuthority, validity: TimeInterval, metrics: KeygateMetrics) {
        self.store = store
        self.builder = CRLBuilder(authority: authority)
        self.issuer = authority.certificate.subject.description
        self.validity = validity
        self.metrics = metrics
    }

    /// The current CRL, rebuilding it first if it is stale. A rebuild already under way is shared
    /// when it reflects every revocation this call can see; one that started before the latest
    /// revocation is awaited and followed by another.
    public func current(now: Date = Date()) async throws -> PublishedCRL {
        while true {
            let revision = try await store.revocationRevision(issuer: issuer)
            if cached == nil { cached = try await store.latestCRL(issuer: issuer) }
            if let cached, cached.revision >= revision, now < cached.thisUpdate + validity / 2 {
                metrics.crlObserved(age: now.timeIntervalSince(cached.thisUpdate))
                return cached
            }
            // Another node sharing the database may have built a current one already.
            if let latest = try await store.latestCRL(issuer: issuer), latest.number > (cached?.number ?? 0),
                latest.revision >= revision, now < latest.thisUpdate + validity / 2
            {
                cached = latest
                continue
            }
            if let (task, taskRevision) = inFlight {
                let crl = try await task.value
                if taskRevision >= revision { return crl }
                continue
            }
            let previous = cached
            let task = Task { try await self.rebuild(revision: revision, previous: previous, now: now) }
            inFlight = (task, revision)
            defer { inFlight = nil }
            let crl = try await task.value
            cached = crl
            metrics.crlObserved(age: 0, entries: crl.entryCount)
            return crl
        }
    }

    /// Serves a newer CRL than the one kept, when another node sharing the database built it.
    public func adoptNewer() async {
        guard let latest = try? await store.latestCRL(issuer: issuer), latest.number > (cached?.number ?? 0) else {
            return
        }
        cached = latest
    }

    /// Builds, signs and records a new CRL now, whatever the state of the current one (for
    /// benchmarks and operators who want a fresh CRL at once).
    public func rebuildNow(now: Date = Date()) async throws -> PublishedCRL {
        if let inFlight { _ = try? await inFlight.task.value }
        let revision = try await store.revocationRevision(issuer: issuer)
        let crl = try await rebuild(revision: revision, previous: cached, now: now)
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
