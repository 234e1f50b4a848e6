import Foundation

/// Spaces calls to an Azure service evenly so that a connector stays under the service's published
/// throttle (IoT Hub's identity registry: about 100 operations a minute per S1 unit) instead of
/// running into 429s: one call every `60 / perMinute` seconds, with no burst, at 95 % of the rate so
/// that latency on the way never crosses the service's own counting window. Every attempt counts,
/// retries included. When several Keygate nodes share the allowance, each paces itself at its
/// share: `perMinute` divided by the number of live nodes (`shares`, asked at each call).
public actor CallPacer {
    /// Calls allowed per minute, for the whole deployment.
    public let perMinute: Int
    private let shares: @Sendable () -> Int
    private var next: ContinuousClock.Instant = .now

    /// A pacer for `perMinute` calls a minute (at least 1), split evenly over `shares()` nodes.
    public init(perMinute: Int, shares: @escaping @Sendable () -> Int = { 1 }) {
        self.perMinute = max(1, perMinute)
        self.shares = shares
    }

    /// The time between two calls of this node.
    public var interval: Duration {
        let share = Double(self.perMinute) / Double(max(1, shares()))
        return .nanoseconds(Int64(60_000_000_000 / (share * 0.95)))
    }

    /// Waits for this call's turn.
    public func acquire() async throws {
        let now = ContinuousClock.now
        let turn = max(now, next)
        next = turn + interval
        if turn > now { try await Task.sleep(until: turn, clock: .continuous) }
    }
}
