import Foundation
import KeygateDomain
import KeygatePKI
import Synchronization

/// Allowlist CSV uploads from the dashboard, imported in the background in batches so that the page
/// can show a progress bar; kept in memory on the node that took the upload (the rows themselves are
/// in the database batch by batch, each batch audited as one `allowlist.imported`).
final class AllowlistImportJobs: Sendable {
    /// One upload's progress.
    struct Job: Sendable {
        var id: String
        var fileName: String
        var actor: String
        var total: Int
        var processed = 0
        var added = 0
        var updated = 0
        var unchanged = 0
        /// Problems by line of the file.
        var errors: [(line: Int, message: String)] = []
        /// Generated one-time tokens (device → token), shown once on the finished page.
        var tokens: [(device: String, token: String)] = []
        var finished = false
        var failure: String?
        var startedAt = Date()
    }

    private let jobs = Mutex<[String: Job]>([:])
    static let batchSize = 250

    /// Parses `csv` and starts importing it; answers the job's ID at once. `malformedInput` when the
    /// whole file is refused (no header, wrong columns).
    func start(csv: String, fileName: String, actor: String, fleet: FleetService) throws -> String {
        let parsed = AllowlistCSV.parse(csv)
        if let fatal = parsed.fatal { throw KeygateError(.malformedInput, fatal) }
        guard parsed.rows.count <= 100_000 else {
            throw KeygateError(.bodyTooLarge, "at most 100,000 rows per upload")
        }
        let id = DashboardSessions.randomText().prefix(16).description
        var job = Job(id: id, fileName: fileName, actor: actor, total: parsed.rows.count + parsed.problems.count)
        job.errors = parsed.problems.map { (line: $0.0, message: $0.1) }
        job.processed = parsed.problems.count
        jobs.withLock { all in
            // Finished jobs are kept for an hour for their page.
            all = all.filter { !$0.value.finished || $0.value.startedAt > Date() - 3600 }
            all[id] = job
        }
        Task { await self.run(id: id, rows: parsed.rows, actor: actor, fleet: fleet) }
        return id
    }

    /// The job's progress; `importNotFound` for an unknown ID.
    func job(_ id: String) throws -> Job {
        guard let job = jobs.withLock({ $0[id] }) else {
            throw KeygateError(.importNotFound, "no allowlist import \(id) on this node")
        }
        return job
    }

    private func run(id: String, rows: [AllowlistCSV.Row], actor: String, fleet: FleetService) async {
        var start = 0
        while start < rows.count {
            let batch = Array(rows[start..<min(start + Self.batchSize, rows.count)])
            do {
                let result = try await fleet.importAllowlist(
                    AllowlistImportRequest(entries: batch.map(\.row)), actor: actor)
                jobs.withLock { all in
                    all[id]?.processed += batch.count
                    all[id]?.added += result.added
                    all[id]?.updated += result.updated
                    all[id]?.unchanged += result.unchanged
                    for error in result.errors {
                        all[id]?.errors.append((line: batch[error.index].line, message: error.message))
                    }
                    for (device, token) in (result.tokens ?? [:]).sorted(by: { $0.key < $1.key }) {
                        all[id]?.tokens.append((device: device, token: token))
                    }
                }
            } catch {
                let message = (error as? KeygateError)?.message ?? "\(error)"
                jobs.withLock { all in
                    all[id]?.failure = "stopped at line \(batch.first?.line ?? 0): \(message)"
                    all[id]?.finished = true
                }
                return
            }
            start += Self.batchSize
        }
        jobs.withLock { all in
            all[id]?.errors.sort { $0.line < $1.line }
            all[id]?.finished = true
        }
    }
}
