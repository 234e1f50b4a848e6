import KeygateDomain

/// Group commit for certificate records: concurrent issuances that arrive while a transaction is
/// being written wait and are written together in the next one, so the single writer commits
/// once per batch instead of once per certificate. Each caller still returns only after its own
/// record is durable.
actor CertificateGroupCommit {
    typealias Item = (record: CertificateRecord, audit: AuditEvent.Draft, done: CheckedContinuation<Void, any Error>)

    private let backend: any SQLBackend
    private let auditKey: AuditKeyHolder
    private var pending: [Item] = []
    private var flushing = false
    /// At most this many records in one transaction.
    private let maximumBatch = 256

    init(backend: any SQLBackend, auditKey: AuditKeyHolder) {
        self.backend = backend
        self.auditKey = auditKey
    }

    func insert(_ record: CertificateRecord, audit: AuditEvent.Draft) async throws {
        try await withCheckedThrowingContinuation { continuation in
            pending.append((record, audit, continuation))
            if !flushing {
                flushing = true
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maximumBatch))
            pending.removeFirst(batch.count)
            let entries = batch.map { ($0.record, $0.audit) }
            let key = auditKey.current
            do {
                try await backend.write(serialized: true) { db in
                    // Multi-row inserts: a handful of statements per batch, not two per certificate
                    // (each is a round trip to PostgreSQL).
                    var head = try DatabaseStore.AuditHead(db)
                    try DatabaseStore.insertCertificates(entries.map(\.0), in: db)
                    _ = try head.append(entries.map { ($0.1, $0.0.createdAt) }, key: key, in: db)
                }
                for item in batch { item.done.resume() }
            } catch {
                // One bad record must not fail the others: write them one by one.
                for item in batch {
                    do {
                        try await backend.write(serialized: true) { db in
                            try DatabaseStore.insertCertificate(item.record, in: db)
                            _ = try DatabaseStore.appendAudit(item.audit, at: item.record.createdAt, key: key, in: db)
                        }
                        item.done.resume()
                    } catch {
                        item.done.resume(throwing: error)
                    }
                }
            }
        }
        flushing = false
    }
}
