import Foundation
import Logging
import Synchronization

/// A log line for events anyone can cause (refusals of unknown IDs, throttled callers): written at most
/// once every `every` seconds, saying how many happened since the last line.
final class SampledLog: Sendable {
    private let logger: Logger
    private let every: TimeInterval
    private let state = Mutex<(count: Int, last: Date)>((0, .distantPast))

    init(logger: Logger, every: TimeInterval) {
        self.logger = logger
        self.every = every
    }

    /// Counts one event; logs `message(count)` when the interval has passed.
    func notice(_ message: (Int) -> String, now: Date = Date()) {
        let due: Int? = state.withLock { state in
            state.count += 1
            guard now.timeIntervalSince(state.last) >= every else { return nil }
            defer { state = (0, now) }
            return state.count
        }
        if let due { logger.notice("\(message(due))") }
    }
}
