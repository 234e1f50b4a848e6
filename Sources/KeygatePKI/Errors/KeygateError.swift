/// An error with a stable, machine-readable code.
///
/// Every layer of Keygate throws `KeygateError`; the HTTP layer maps ``Code/kind`` to a status
/// and sends `{"code": ..., "message": ...}`. Codes never change once published: clients match on them.
///
/// ```swift
/// throw KeygateError(.csrSignatureInvalid, "the CSR's signature does not match its public key")
/// ```
public struct KeygateError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The stable code, such as `csrSignatureInvalid`.
    public var code: Code
    /// A sentence for a human; never contains secrets.
    public var message: String
    /// Seconds after which a retry may succeed (for `unavailable` errors).
    public var retryAfter: Int?

    public init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

extension KeygateError {
    /// A stable error code and the class of failure it belongs to.
    ///
    /// Modules add their own codes in extensions, next to the code that throws them.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public var kind: Kind

        public init(_ rawValue: String, kind: Kind) {
            self.rawValue = rawValue
            self.kind = kind
        }

        public var description: String { rawValue }

        public static func == (lhs: Code, rhs: Code) -> Bool { lhs.rawValue == rhs.rawValue }
        public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
    }

    /// The class of a failure; the HTTP layer turns it into a status code.
    public enum Kind: String, Hashable, Sendable {
        /// The request is malformed or violates policy (400).
        case invalidInput
        /// No or wrong credentials (401).
        case unauthorized
        /// Authenticated but not allowed (403).
        case forbidden
        /// The thing named does not exist (404).
        case notFound
        /// The request conflicts with the current state (409).
        case conflict
        /// The request body is too large (413).
        case tooLarge
        /// Too many attempts (429).
        case rateLimited
        /// A dependency (HSM, vault, database) is unavailable; retry later (503).
        case unavailable
        /// A bug or an unexpected condition (500).
        case internalError
    }
}

extension KeygateError.Code {
    // Input and encoding
    public static let malformedInput = Self("malformedInput", kind: .invalidInput)
    public static let malformedPEM = Self("malformedPEM", kind: .invalidInput)
    public static let malformedDER = Self("malformedDER", kind: .invalidInput)
    public static let malformedJSON = Self("malformedJSON", kind: .invalidInput)
    public static let bodyTooLarge = Self("bodyTooLarge", kind: .tooLarge)

    // CSR policy
    public static let malformedCSR = Self("malformedCSR", kind: .invalidInput)
    public static let csrSignatureInvalid = Self("csrSignatureInvalid", kind: .invalidInput)
    public static let csrTooLarge = Self("csrTooLarge", kind: .tooLarge)
    public static let keyAlgorithmNotAllowed = Self("keyAlgorithmNotAllowed", kind: .invalidInput)
    public static let keyTooWeak = Self("keyTooWeak", kind: .invalidInput)
    public static let unsupportedKey = Self("unsupportedKey", kind: .invalidInput)

    // Issuance
    public static let unknownProfile = Self("unknownProfile", kind: .invalidInput)
    public static let invalidSubject = Self("invalidSubject", kind: .invalidInput)
    public static let signerUnavailable = Self("signerUnavailable", kind: .unavailable)
    public static let signingFailed = Self("signingFailed", kind: .internalError)

    // Keys at rest
    public static let wrongPassphrase = Self("wrongPassphrase", kind: .unauthorized)
    public static let unsupportedKeyEncryption = Self("unsupportedKeyEncryption", kind: .invalidInput)

    // Revocation
    public static let unknownRevocationReason = Self("unknownRevocationReason", kind: .invalidInput)
    public static let malformedOCSPRequest = Self("malformedOCSPRequest", kind: .invalidInput)

    // Generic
    public static let notFound = Self("notFound", kind: .notFound)
    public static let conflict = Self("conflict", kind: .conflict)
    public static let unauthorized = Self("unauthorized", kind: .unauthorized)
    public static let internalError = Self("internalError", kind: .internalError)
    public static let unavailable = Self("unavailable", kind: .unavailable)
}
