public import Crypto
import Foundation
import KeygateDomain
import KeygatePKI

/// The secret that keys the audit chain, kept outside the database.
///
/// From ``keyedFrom`` on, an entry's hash is `HMAC-SHA256(key, previousHash ‖ canonical(entry))`, so
/// someone who can write the database but does not hold the key cannot recompute the chain after
/// editing history. Entries before `keyedFrom` (written before the log was keyed) keep their plain
/// SHA-256 links. Checkpoints of the chain's head are signed with a key derived from the same secret.
public struct AuditChainKey: Sendable {
    /// The 32-byte chain secret.
    public let key: SymmetricKey
    /// The first sequence number chained with the key.
    public let keyedFrom: Int64

    /// Wraps a secret and the sequence number from which it keys the chain.
    public init(key: SymmetricKey, keyedFrom: Int64) {
        self.key = key
        self.keyedFrom = keyedFrom
    }

    /// The key for checkpoint signatures, derived so that it never equals the chain key itself.
    var checkpointKey: SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: key, salt: Array("keygate-audit-checkpoint".utf8), info: Array("v1".utf8),
            outputByteCount: 32)
    }

    /// The hash of an entry: keyed from ``keyedFrom`` on, plain SHA-256 before (and without a key).
    public static func chainHash(
        _ key: AuditChainKey?, previous: String, sequence: Int64, atMilliseconds: Int64, actor: String, action: String,
        subject: String, details: [String: String]
    ) -> String {
        let canonical = AuditEvent.canonicalBytes(
            sequence: sequence, atMilliseconds: atMilliseconds, actor: actor, action: action, subject: subject,
            details: details)
        if let key, sequence >= key.keyedFrom {
            var mac = HMAC<SHA256>(key: key.key)
            mac.update(data: Array(previous.utf8))
            mac.update(data: canonical)
            return Data(mac.finalize()).withUnsafeBytes { Hex.encode(Array($0)) }
        }
        var hasher = SHA256()
        hasher.update(data: Array(previous.utf8))
        hasher.update(data: canonical)
        return hasher.finalize().withUnsafeBytes { Hex.encode(Array($0)) }
    }

    /// The signature of a checkpoint: HMAC-SHA256 under ``checkpointKey`` of its fields.
    public func sign(_ checkpoint: AuditCheckpoint) -> String {
        let text = "keygate-audit-checkpoint-v1|\(checkpoint.sequence)|\(checkpoint.hash)|\(checkpoint.atMilliseconds)"
        let mac = HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: checkpointKey)
        return Data(mac).withUnsafeBytes { Hex.encode(Array($0)) }
    }

    /// Whether `checkpoint.signature` is this key's signature of it (compared in constant time).
    public func verify(_ checkpoint: AuditCheckpoint) -> Bool {
        let text = "keygate-audit-checkpoint-v1|\(checkpoint.sequence)|\(checkpoint.hash)|\(checkpoint.atMilliseconds)"
        guard let signature = Hex.decode(checkpoint.signature) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            signature, authenticating: Array(text.utf8), using: checkpointKey)
    }
}

/// A signed statement of the audit chain's head at a moment: its newest sequence number and hash.
///
/// Kept where the database is not (a file beside it, or a copy elsewhere), so that deleting the
/// newest entries, or rewriting history and recomputing the chain, no longer matches it.
public struct AuditCheckpoint: Sendable, Hashable, Codable {
    /// The newest entry's sequence number (0: the log was empty).
    public var sequence: Int64
    /// That entry's hash.
    public var hash: String
    /// When the checkpoint was taken, in Unix milliseconds.
    public var atMilliseconds: Int64
    /// HMAC-SHA256 (hex) of the fields above under the checkpoint key.
    public var signature: String

    /// Creates a checkpoint (unsigned until ``AuditChainKey/sign(_:)`` fills `signature`).
    public init(sequence: Int64, hash: String, atMilliseconds: Int64, signature: String = "") {
        self.sequence = sequence
        self.hash = hash
        self.atMilliseconds = atMilliseconds
        self.signature = signature
    }
}
