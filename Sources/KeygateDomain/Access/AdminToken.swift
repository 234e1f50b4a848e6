public import Foundation

/// An admin API credential. Only its SHA-256 hash is stored; the token itself is shown once.
public struct AdminToken: Sendable, Hashable, Codable {
    /// A label for the token (the one created at initialization is `initial`); audit actors read `admin:<name>`.
    public var name: String
    /// Hex SHA-256 of the token text.
    public var hash: String
    /// When the token was added; stored to the millisecond.
    public var createdAt: Date

    /// Creates a record; `hash` comes from hashing the token text, never the text itself.
    public init(name: String, hash: String, createdAt: Date = Date()) {
        self.name = name
        self.hash = hash
        self.createdAt = createdAt
    }

    /// Tokens look like `kg_` followed by 43 base64url characters (32 random bytes).
    public static let prefix = "kg_"
}
