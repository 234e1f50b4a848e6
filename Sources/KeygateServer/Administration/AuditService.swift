public import Foundation
public import KeygateDomain
public import KeygateStore
import KeygatePKI

/// The audit log as operators read it: events by subject and time, exports, and a check of the
/// keyed hash chain against the signed checkpoints kept outside the database.
public struct AuditService: Sendable {
    let store: any ServerStore
    /// The chain key and checkpoint file; `nil` for a store used without a data folder.
    public let anchor: AuditAnchor?

    /// Events about `subject` (any subject when `nil`) since `since`, at most `limit`.
    public func events(subject: String?, since: Date?, limit: Int) async throws -> [AuditEvent] {
        try await store.auditEvents(subject: subject, since: since, limit: limit)
    }

    /// Events after sequence number `after`, oldest first, at most `limit`: pages of an export.
    public func events(after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await store.auditEvents(after: after, limit: limit)
    }

    /// What a verification found.
    public struct Verification: Sendable {
        /// The first problem, or `nil` when the chain and every checkpoint hold.
        public var problem: AuditChainBreak?
        /// How many checkpoints were checked.
        public var checkpoints: Int
        /// The newest checkpoint's entry, if any.
        public var newestCheckpoint: Int64?
        /// The entry from which the chain is keyed, if it is.
        public var keyedFrom: Int64?
    }

    /// Walks the chain (keyed where it is) and checks every checkpoint against it: truncation after
    /// the newest checkpoint and rewritten history are reported like an altered entry.
    public func verify() async throws -> Verification {
        let checkpoints: [AuditCheckpoint]
        do {
            checkpoints = try anchor?.checkpoints() ?? []
        } catch let error as KeygateError {
            return Verification(
                problem: AuditChainBreak(sequence: 0, reason: error.message), checkpoints: 0, newestCheckpoint: nil,
                keyedFrom: anchor?.key.keyedFrom)
        }
        let problem = try await store.verifyAuditChain(checkpoints: checkpoints)
        return Verification(
            problem: problem, checkpoints: checkpoints.count, newestCheckpoint: checkpoints.map(\.sequence).max(),
            keyedFrom: anchor?.key.keyedFrom)
    }

    /// Writes a checkpoint of the chain's head now (when it moved since this node's last one).
    @discardableResult
    public func checkpoint() async throws -> AuditCheckpoint? { try await anchor?.checkpoint(store) }
}
