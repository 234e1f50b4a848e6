import Foundation
import KeygatePKI
import Synchronization

/// Signed OCSP answers kept ready, so the responder mostly serves bytes.
///
/// Answers are keyed by serial and then by the exact `CertID` asked (clients differ in hash
/// algorithm and encoding). A status change removes the serial's answers and bumps its version: an
/// answer signed from a lookup made before the change is then refused by ``put``, so a stale
/// status can never be cached after a revocation.
final class OCSPCache: Sendable {
    struct Entry: Sendable {
        var bytes: [UInt8]
        var producedAt: Date
    }

    private struct State {
        var answers: [String: [OCSPRequest.CertID: Entry]] = [:]
        var versions: [String: Int] = [:]
        var count = 0
        /// Moves when every answer is dropped (a revocation made through another node).
        var generation = 0
    }

    private let state = Mutex(State())
    /// Answers are served while younger than this (half their validity).
    let freshFor: TimeInterval
    let capacity: Int

    init(freshFor: TimeInterval, capacity: Int = 500_000) {
        self.freshFor = freshFor
        self.capacity = capacity
    }

    /// A fresh answer for this exact CertID, if one is kept.
    func answer(serial: String, id: OCSPRequest.CertID, now: Date) -> [UInt8]? {
        state.withLock { state in
            guard let entry = state.answers[serial]?[id], now.timeIntervalSince(entry.producedAt) < freshFor else {
                return nil
            }
            return entry.bytes
        }
    }

    /// The serial's version: read it before looking up the status an answer will be signed from.
    func version(serial: String) -> Version {
        state.withLock { Version(serial: $0.versions[serial] ?? 0, generation: $0.generation) }
    }

    /// A serial's version and the cache's generation, as read before a status lookup.
    struct Version: Equatable {
        var serial: Int
        var generation: Int
    }

    /// Keeps an answer unless the serial's status changed since `version` was read.
    func put(serial: String, id: OCSPRequest.CertID, entry: Entry, version: Version) {
        state.withLock { state in
            guard Version(serial: state.versions[serial] ?? 0, generation: state.generation) == version else { return }
            if state.count >= capacity {
                // Crude but bounded: start over rather than track recency on the hot path.
                state.answers.removeAll(keepingCapacity: true)
                state.count = 0
            }
            if state.answers[serial, default: [:]].updateValue(entry, forKey: id) == nil { state.count += 1 }
        }
    }

    /// Forgets every answer (a status changed through another node, serial unknown here); answers
    /// signed from lookups made before are refused by ``put``.
    func invalidateAll() {
        state.withLock { state in
            state.generation += 1
            state.answers.removeAll(keepingCapacity: true)
            state.count = 0
        }
    }

    /// Forgets a serial's answers after its status changed; returns the CertIDs that were asked for.
    func invalidate(serial: String) -> [OCSPRequest.CertID] {
        state.withLock { state in
            state.versions[serial, default: 0] += 1
            guard let removed = state.answers.removeValue(forKey: serial) else { return [] }
            state.count -= removed.count
            return Array(removed.keys)
        }
    }

    /// Answers older than `age`, to sign again before they go stale (at most `limit`).
    func aging(olderThan age: TimeInterval, now: Date, limit: Int) -> [(serial: String, id: OCSPRequest.CertID)] {
        state.withLock { state in
            var found: [(String, OCSPRequest.CertID)] = []
            for (serial, answers) in state.answers {
                for (id, entry) in answers where now.timeIntervalSince(entry.producedAt) >= age {
                    found.append((serial, id))
                    if found.count >= limit { return found }
                }
            }
            return found
        }
    }

    var count: Int { state.withLock { $0.count } }
}
