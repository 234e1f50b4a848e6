public import Foundation
public import KeygateDomain
public import KeygateStore

/// The audit log as operators read it: events by subject and time, and a check of the hash chain.
public struct AuditService: Sendable {
    let store: any ServerStore

    /// Events about `subject` (any subject when `nil`) since `since`, at most `limit`.
    public func events(subject: String?, since: Date?, limit: Int) async throws -> [AuditEvent] {
        try await store.auditEvents(subject: subject, since: since, limit: limit)
    }

    /// Walks the chain; answers the first entry that does not verify, or `nil` when it is intact.
    public func verify() async throws -> AuditChainBreak? { try await store.verifyAuditChain() }
}
