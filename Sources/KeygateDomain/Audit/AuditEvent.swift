public import Foundation

/// One entry of the append-only audit log.
///
/// Entries are hash-chained: `hash = SHA-256(previousHash ‖ canonical(entry))`, so changing or
/// removing an entry breaks every hash after it.
public struct AuditEvent: Sendable, Hashable, Codable {
    /// Position in the log, starting at 1.
    public var sequence: Int64
    /// When the event was recorded, in whole milliseconds (the precision the hash commits to).
    public var at: Date
    /// Who acted: `admin:<token name>`, `device:<id>`, `system`.
    public var actor: String
    /// What happened, as a dotted verb: `certificate.issued`, `certificate.revoked`.
    public var action: String
    /// What it happened to: a serial, a device ID.
    public var subject: String
    /// Further facts as flat key/value pairs (never secrets).
    public var details: [String: String]
    /// The ``hash`` of the entry before this one; ``genesisHash`` for the first entry.
    public var previousHash: String
    /// Hex SHA-256 of ``previousHash`` followed by the entry's canonical bytes (see ``canonicalBytes``).
    public var hash: String

    /// Creates an entry as the store reads it back; new events are appended as a ``Draft``.
    public init(
        sequence: Int64, at: Date, actor: String, action: String, subject: String, details: [String: String],
        previousHash: String, hash: String
    ) {
        self.sequence = sequence
        self.at = at
        self.actor = actor
        self.action = action
        self.subject = subject
        self.details = details
        self.previousHash = previousHash
        self.hash = hash
    }

    /// An event before it is chained into the log.
    public struct Draft: Sendable, Hashable {
        /// Who acts: `admin:<token name>`, `device:<id>` or `system`.
        public var actor: String
        /// What happens, as a dotted verb such as `device.registered`.
        public var action: String
        /// What it happens to: a serial, a device ID, a group name.
        public var subject: String
        /// Further facts as flat key/value pairs (never secrets); the store may add some, such as changed serials.
        public var details: [String: String]

        /// Creates a draft; the store assigns sequence, time and hashes when it appends it.
        public init(actor: String, action: String, subject: String, details: [String: String] = [:]) {
            self.actor = actor
            self.action = action
            self.subject = subject
            self.details = details
        }
    }

    /// The hash of the log's first `previousHash`.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// The bytes an entry's hash commits to, besides the previous hash: every field, length-prefixed,
    /// with details sorted by key.
    public static func canonicalBytes(
        sequence: Int64, atMilliseconds: Int64, actor: String, action: String, subject: String,
        details: [String: String]
    ) -> [UInt8] {
        var out: [UInt8] = []
        func field(_ text: String) {
            let bytes = Array(text.utf8)
            let n = UInt32(bytes.count)
            out += [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
            out += bytes
        }
        field(String(sequence))
        field(String(atMilliseconds))
        field(actor)
        field(action)
        field(subject)
        for key in details.keys.sorted() {
            field(key)
            field(details[key]!)
        }
        return out
    }
}
