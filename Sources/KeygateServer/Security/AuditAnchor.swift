import Crypto
import Foundation
import KeygateDomain
import KeygatePKI
public import KeygateStore
import Synchronization

/// What keeps the audit log honest beyond its own database: the chain key (sealed with the CA
/// passphrase in `audit/audit-key.json`) and the signed checkpoints of the chain's head
/// (`audit/checkpoints.jsonl`, one JSON object per line, or wherever the configuration puts it).
///
/// Someone who can write the database can neither recompute the keyed chain after editing history
/// nor delete the newest entries unnoticed: the newest checkpoint names an entry and its hash.
public struct AuditAnchor: Sendable {
    /// The unsealed chain key.
    public let key: AuditChainKey
    /// The checkpoint file's absolute path.
    public let checkpointPath: String
    private let state: State

    /// The key file, relative to the data folder.
    public static let keyFile = "audit/audit-key.json"
    /// The default checkpoint file, relative to the data folder.
    public static let defaultCheckpointFile = "audit/checkpoints.jsonl"

    private final class State: Sendable {
        /// The newest sequence number written to the checkpoint file by this process.
        let lastWritten = Mutex<Int64?>(nil)
    }

    /// The key file as stored: the key sealed with the CA passphrase (or, in a deployment without one,
    /// in the clear, protected by the file's 0600 mode only).
    struct KeyFile: Codable {
        var version: Int
        var keyedFrom: Int64
        var sealedKey: String?
        var key: String?
    }

    init(key: AuditChainKey, checkpointPath: String) {
        self.key = key
        self.checkpointPath = checkpointPath
        self.state = State()
    }

    /// Makes a new chain key that keys the log from entry `keyedFrom` on and writes the key file
    /// (0600): sealed with `secrets` when there is a passphrase.
    static func create(directory: DataDirectory, secrets: SecretBox?, keyedFrom: Int64) throws -> AuditChainKey {
        let secret = SymmetricKey(size: .bits256)
        let text = secret.withUnsafeBytes { Data($0).base64EncodedString() }
        let file = KeyFile(
            version: 1, keyedFrom: keyedFrom, sealedKey: try secrets?.seal(text), key: secrets == nil ? text : nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try directory.write(try encoder.encode(file), to: keyFile, mode: 0o600)
        return AuditChainKey(key: secret, keyedFrom: keyedFrom)
    }

    /// The data folder's audit chain key, or `nil` when it has no key file.
    public static func loadKey(directory: DataDirectory, secrets: SecretBox?) throws -> AuditChainKey? {
        guard let data = FileManager.default.contents(atPath: directory.path(keyFile)) else { return nil }
        guard let file = try? JSONDecoder().decode(KeyFile.self, from: data), file.version == 1 else {
            throw KeygateError(.internalError, "\(directory.path(keyFile)) cannot be read")
        }
        let text: String
        if let sealed = file.sealedKey {
            guard let secrets else {
                throw KeygateError(
                    .passphraseMissing, "the audit key is sealed with the CA passphrase; give the passphrase")
            }
            text = try secrets.open(sealed)
        } else if let plain = file.key {
            text = plain
        } else {
            throw KeygateError(.internalError, "\(directory.path(keyFile)) holds no key")
        }
        guard let bytes = Data(base64Encoded: text), bytes.count == 32 else {
            throw KeygateError(.internalError, "\(directory.path(keyFile)) holds a damaged key")
        }
        return AuditChainKey(key: SymmetricKey(data: bytes), keyedFrom: file.keyedFrom)
    }

    /// Opens the data folder's chain key and keys `store` with it. A folder made before the log was
    /// keyed gets a key now, which keys the entries after the current newest one (an `audit.keyed`
    /// entry records it); a folder whose log says it was keyed but has lost its key file is refused.
    static func open(
        directory: DataDirectory, configuration: ServerConfiguration, secrets: SecretBox?, store: any ServerStore
    ) async throws -> AuditAnchor {
        let checkpointPath = directory.path(configuration.auditCheckpointFile ?? defaultCheckpointFile)
        let key: AuditChainKey
        if let existing = try loadKey(directory: directory, secrets: secrets) {
            key = existing
            store.useAuditKey(key)
        } else {
            let keyed = try await store.auditEvents(subject: Self.chainSubject, since: nil, limit: 100)
            if keyed.contains(where: { $0.action == Self.keyedAction && $0.actor == "system" }) {
                throw KeygateError(
                    .internalError,
                    "the audit log is keyed but \(directory.path(keyFile)) is missing: restore it from a backup")
            }
            let head = try await store.auditHead()
            key = try create(directory: directory, secrets: secrets, keyedFrom: head.sequence + 1)
            store.useAuditKey(key)
            _ = try await store.appendAudit(Self.keyedEvent(from: key.keyedFrom))
        }
        return AuditAnchor(key: key, checkpointPath: checkpointPath)
    }

    static let chainSubject = "audit-chain"
    static let keyedAction = "audit.keyed"

    /// The entry that records from where the chain is keyed (written by `init`, or when an older
    /// folder gets its key): with it in the log, a missing key file is an error, not a fresh start.
    static func keyedEvent(from sequence: Int64) -> AuditEvent.Draft {
        .init(actor: "system", action: keyedAction, subject: chainSubject, details: ["keyedFrom": "\(sequence)"])
    }

    /// Every checkpoint in the file, oldest first; a line that is not a checkpoint is an error
    /// naming the line. No file: none yet.
    public func checkpoints() throws -> [AuditCheckpoint] {
        guard let data = FileManager.default.contents(atPath: checkpointPath) else { return [] }
        var result: [AuditCheckpoint] = []
        for (index, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.isEmpty {
            guard let checkpoint = try? JSONDecoder().decode(AuditCheckpoint.self, from: Data(line)) else {
                throw KeygateError(
                    .auditCheckpointUnreadable, "line \(index + 1) of \(checkpointPath) is not an audit checkpoint")
            }
            result.append(checkpoint)
        }
        return result
    }

    /// Signs the chain's current head and appends it to the checkpoint file (flushed to disk), unless
    /// this process already wrote a checkpoint of that entry. Answers the checkpoint written, if any.
    @discardableResult
    public func checkpoint(_ store: any AuditStore) async throws -> AuditCheckpoint? {
        var head = try await store.auditHead()
        guard state.lastWritten.withLock({ $0 }) != head.sequence else { return nil }
        head.signature = key.sign(head)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(head)
        line.append(UInt8(ascii: "\n"))
        try Self.append(line, to: checkpointPath)
        state.lastWritten.withLock { $0 = head.sequence }
        return head
    }

    private static func append(_ line: Data, to path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = Foundation.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw KeygateError(.internalError, "cannot open \(path) to append an audit checkpoint (errno \(errno))")
        }
        defer { close(fd) }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(fd) == 0 else {
            throw KeygateError(.internalError, "cannot write an audit checkpoint to \(path) (errno \(errno))")
        }
    }
}
