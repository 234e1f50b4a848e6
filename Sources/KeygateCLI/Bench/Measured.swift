import Foundation

/// Latencies and failures of `count` operations run with at most `concurrency` at once.
struct Measured: Sendable {
    /// Milliseconds, sorted.
    var latencies: [Double]
    var failures: Int
    var seconds: Double
    /// The first failure, to say why.
    var firstError: String?

    var perSecond: Double { Double(latencies.count - failures) / max(seconds, 1e-9) }

    func percentile(_ p: Double) -> Double {
        latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
    }

    static func run(
        count total: Int, concurrency: Int, progress: ProgressBar? = nil,
        _ operation: @escaping @Sendable (Int) async throws -> Void
    ) async throws -> Measured {
        let clock = ContinuousClock()
        let start = clock.now
        var result = try await withThrowingTaskGroup(of: (Double, String?).self) { group in
            var next = 0
            var measured = Measured(latencies: [], failures: 0, seconds: 0)
            measured.latencies.reserveCapacity(total)
            func launch(_ index: Int) {
                group.addTask {
                    let begin = clock.now
                    do {
                        try await operation(index)
                        return ((clock.now - begin).milliseconds, nil)
                    } catch {
                        return ((clock.now - begin).milliseconds, "\(error)")
                    }
                }
            }
            while next < min(concurrency, total) {
                launch(next)
                next += 1
            }
            while let (latency, error) = try await group.next() {
                measured.latencies.append(latency)
                if let error {
                    measured.failures += 1
                    if measured.firstError == nil { measured.firstError = error }
                }
                progress?.advance()
                if next < total {
                    launch(next)
                    next += 1
                }
            }
            return measured
        }
        result.latencies.sort()
        result.seconds = (clock.now - start).milliseconds / 1000
        return result
    }
}
