import Foundation

/// Why a certificate was revoked (RFC 5280 §5.3.1).
///
/// ```
/// CRLReason ::= ENUMERATED {
///     unspecified             (0),
///     keyCompromise           (1),
///     cACompromise            (2),
///     affiliationChanged      (3),
///     superseded              (4),
///     cessationOfOperation    (5),
///     certificateHold         (6),
///          -- value 7 is not used
///     removeFromCRL           (8),
///     privilegeWithdrawn      (9),
///     aACompromise           (10) }
/// ```
public enum RevocationReason: Int, CaseIterable, Codable, Sendable {
    case unspecified = 0
    case keyCompromise = 1
    case caCompromise = 2
    case affiliationChanged = 3
    case superseded = 4
    case cessationOfOperation = 5
    case certificateHold = 6
    case privilegeWithdrawn = 9
    case aaCompromise = 10

    /// The name used on the command line and in the API (RFC 5280 spelling).
    public var name: String {
        switch self {
        case .unspecified: return "unspecified"
        case .keyCompromise: return "keyCompromise"
        case .caCompromise: return "cACompromise"
        case .affiliationChanged: return "affiliationChanged"
        case .superseded: return "superseded"
        case .cessationOfOperation: return "cessationOfOperation"
        case .certificateHold: return "certificateHold"
        case .privilegeWithdrawn: return "privilegeWithdrawn"
        case .aaCompromise: return "aACompromise"
        }
    }

    /// Parses a name case-insensitively (`keyCompromise`, `key-compromise`, `superseded`...).
    public init(name: String) throws {
        let wanted = name.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "")
        guard let match = Self.allCases.first(where: { $0.name.lowercased() == wanted }) else {
            let names = Self.allCases.map(\.name).joined(separator: ", ")
            throw KeygateError(.unknownRevocationReason, "unknown revocation reason '\(name)'; use one of: \(names)")
        }
        self = match
    }

    /// Reasons allowed for a CA-issued end-entity revocation request (not `cACompromise`/`aACompromise`).
    public var isAllowedForEndEntity: Bool {
        self != .caCompromise && self != .aaCompromise
    }
}
