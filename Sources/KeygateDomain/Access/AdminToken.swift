public import Foundation

/// An admin API credential. Only its SHA-256 hash is stored; the token itself is shown once.
public struct AdminToken: Sendable, Hashable, Codable {
    /// A label for the token (the one created at initialization is `initial`); audit actors read `admin:<name>`.
    public var name: String
    /// Hex SHA-256 of the token text.
    public var hash: String
    /// When the token was added; stored to the millisecond.
    public var createdAt: Date
    /// What the token may do.
    public var role: Role
    /// After this the token is refused; `nil`: it does not expire.
    public var expiresAt: Date?
    /// When an operator revoked it (`keygate token revoke`); a revoked token is refused.
    public var revokedAt: Date?

    /// Creates a record; `hash` comes from hashing the token text, never the text itself.
    public init(
        name: String, hash: String, createdAt: Date = Date(), role: Role = .admin, expiresAt: Date? = nil,
        revokedAt: Date? = nil
    ) {
        self.name = name
        self.hash = hash
        self.createdAt = createdAt
        self.role = role
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    /// What a token may do on the admin API.
    public enum Role: String, Sendable, Hashable, Codable, CaseIterable {
        /// Everything, tokens and connectors (Azure credentials) included.
        case admin
        /// Day-to-day operations: devices, groups, the allowlist, certificates, rotations, the outbox;
        /// not tokens or connectors.
        case `operator`
        /// Reading only (monitoring, dashboards' viewers).
        case readOnly = "read-only"

        /// Whether the role may call `method` on the admin path `path` (`/admin/v1/...`).
        public func allows(method: String, path: String) -> Bool {
            switch self {
            case .admin:
                return true
            case .readOnly:
                return method == "GET" || method == "HEAD"
            case .operator:
                if method == "GET" || method == "HEAD" { return !path.hasPrefix("/admin/v1/tokens") }
                return !path.hasPrefix("/admin/v1/tokens") && !path.hasPrefix("/admin/v1/connectors")
            }
        }
    }

    /// Whether the token may be used at `date`: not revoked, not expired.
    public func isUsable(at date: Date = Date()) -> Bool {
        revokedAt == nil && (expiresAt.map { $0 > date } ?? true)
    }

    /// A name is 1 to 64 letters, digits, `-`, `_` and `.`.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.count)
            && name.unicodeScalars.allSatisfy {
                CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0)
            }
    }

    /// Tokens look like `kg_` followed by 43 base64url characters (32 random bytes).
    public static let prefix = "kg_"
}
