import Foundation
import Synchronization

/// Token buckets by key (a client address, or one shared key): `rate` tokens a second up to `burst`.
/// Memory stays bounded: past `maximumEntries` keys a tenth of them is forgotten.
final class TokenBuckets: Sendable {
    let rate: Double
    let burst: Double
    private let maximumEntries: Int
    private let buckets = Mutex<[String: (tokens: Double, updated: Date)]>([:])

    init(rate: Double, burst: Double, maximumEntries: Int = 100_000) {
        self.rate = rate
        self.burst = burst
        self.maximumEntries = maximumEntries
    }

    /// Takes a token for `key`: `nil` when there was one, else the seconds until there is.
    func take(_ key: String, now: Date = Date()) -> Double? {
        buckets.withLock { buckets in
            var bucket = buckets[key] ?? (burst, now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now.timeIntervalSince(bucket.updated)) * rate)
            bucket.updated = now
            let wait: Double?
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                wait = nil
            } else {
                wait = (1 - bucket.tokens) / rate
            }
            buckets[key] = bucket
            if buckets.count > maximumEntries {
                for stale in Array(buckets.keys.prefix(max(1, maximumEntries / 10))) { buckets.removeValue(forKey: stale) }
            }
            return wait
        }
    }
}
