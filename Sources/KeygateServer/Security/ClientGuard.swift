import Foundation
import KeygateDomain
import KeygatePKI
import Synchronization

/// Protects the device API from anonymous callers, per client address (one node's view):
///
/// - a token bucket per address on every unauthenticated route: `requestsPerSecond`, bursts up to
///   `burst`; over it, 429 `rateLimited` with Retry-After;
/// - failed attestations are counted per (address, device) and per address: after
///   `failuresPerDevice` failures for one device that address is refused for that device, after
///   `failuresPerClient` for any devices it is refused for all, each for `blockDuration`.
///
/// Failures never lock the device itself: a device that proves itself (a valid certificate over mTLS,
/// a correct DDK, X.509 or symmetric-key proof) from its own address is never stopped by what an
/// anonymous caller elsewhere did with its ID.
final class ClientGuard: Sendable {
    struct Limits: Sendable {
        /// Requests a second per address; 0: no rate limit.
        var requestsPerSecond: Double = 20
        var burst: Double = 40
        var failuresPerDevice = 5
        var failuresPerClient = 20
        var blockDuration: TimeInterval = 15 * 60
        /// Addresses (and address/device pairs) remembered at most; the oldest are forgotten first.
        var maximumEntries = 100_000
    }

    private struct Failures {
        var count = 0
        var blockedUntil: Date?
        var updated: Date
    }

    private struct State {
        var clientFailures: [String: Failures] = [:]
        var pairFailures: [String: Failures] = [:]
    }

    let limits: Limits
    private let state = Mutex(State())
    private let requests: TokenBuckets

    init(limits: Limits = Limits()) {
        self.limits = limits
        requests = TokenBuckets(
            rate: max(limits.requestsPerSecond, 0.001), burst: limits.burst, maximumEntries: limits.maximumEntries)
    }

    /// The limits a server configuration asks for (`deviceRequestsPerSecond`: nil for the default).
    convenience init(requestsPerSecond: Double?) {
        var limits = Limits()
        if let requestsPerSecond {
            limits.requestsPerSecond = max(0, requestsPerSecond)
            limits.burst = max(1, 2 * requestsPerSecond)
        }
        self.init(limits: limits)
    }

    /// Takes a token for a request from `client`; throws `rateLimited` when its bucket is empty.
    func admitRequest(from client: String, now: Date = Date()) throws {
        guard limits.requestsPerSecond > 0, let wait = requests.take(client, now: now) else { return }
        throw KeygateError(
            .rateLimited, "too many requests from \(client); slow down", retryAfter: max(1, Int(wait.rounded(.up))))
    }

    /// Throws `deviceLocked` when `client` may not try `deviceID` (or any device) for now.
    func checkAttempt(from client: String, device deviceID: String, now: Date = Date()) throws {
        let until: Date? = state.withLock { state in
            [state.clientFailures[client]?.blockedUntil, state.pairFailures[Self.pair(client, deviceID)]?.blockedUntil]
                .compactMap { $0 }.filter { $0 > now }.max()
        }
        if let until {
            throw KeygateError(
                .deviceLocked, "too many failed attestations from \(client); try again later",
                retryAfter: Int(until.timeIntervalSince(now).rounded(.up)))
        }
    }

    /// Counts a failed attestation; answers until when `client` is now refused for `deviceID`, if it is.
    @discardableResult
    func recordFailure(from client: String, device deviceID: String, now: Date = Date()) -> Date? {
        state.withLock { state in
            let blockedUntil = now + limits.blockDuration
            var pair = state.pairFailures[Self.pair(client, deviceID)] ?? Failures(updated: now)
            var total = state.clientFailures[client] ?? Failures(updated: now)
            // Counts start again once a block has passed.
            if let until = pair.blockedUntil, until <= now { pair = Failures(updated: now) }
            if let until = total.blockedUntil, until <= now { total = Failures(updated: now) }
            pair.count += 1
            total.count += 1
            pair.updated = now
            total.updated = now
            if pair.count >= limits.failuresPerDevice { pair.blockedUntil = blockedUntil }
            if total.count >= limits.failuresPerClient { total.blockedUntil = blockedUntil }
            state.pairFailures[Self.pair(client, deviceID)] = pair
            state.clientFailures[client] = total
            Self.trim(&state.pairFailures, to: limits.maximumEntries)
            Self.trim(&state.clientFailures, to: limits.maximumEntries)
            return [pair.blockedUntil, total.blockedUntil].compactMap { $0 }.filter { $0 > now }.max()
        }
    }

    /// A proof succeeded: the address's failures for this device are forgotten.
    func recordSuccess(from client: String, device deviceID: String) {
        state.withLock { state in _ = state.pairFailures.removeValue(forKey: Self.pair(client, deviceID)) }
    }

    private static func pair(_ client: String, _ deviceID: String) -> String { client + "\u{0}" + deviceID }

    /// Keeps at most `limit` entries, dropping a tenth of them when over (memory stays bounded under a
    /// flood of addresses).
    private static func trim<Value>(_ entries: inout [String: Value], to limit: Int) {
        guard entries.count > limit else { return }
        let drop = max(1, limit / 10)
        let victims = entries.keys.prefix(drop)
        for key in Array(victims) { entries.removeValue(forKey: key) }
    }
}
