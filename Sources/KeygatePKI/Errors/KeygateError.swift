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

    /// Creates an error; pass `retryAfter` (seconds) with codes of kind ``Kind/unavailable``.
    public init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// `code: message`, for logs and the command line.
    public var description: String { "\(code.rawValue): \(message)" }
}

extension KeygateError {
    /// A stable error code and the class of failure it belongs to.
    ///
    /// Modules add their own codes in extensions, next to the code that throws them.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The stable name clients match on, such as `csrTooLarge`; the only part compared and hashed.
        public var rawValue: String
        /// The class of failure, which decides the HTTP status.
        public var kind: Kind

        /// Declares a code; modules publish theirs as static constants in an extension of `Code`.
        public init(_ rawValue: String, kind: Kind) {
            self.rawValue = rawValue
            self.kind = kind
        }

        /// The raw value, such as `malformedPEM`.
        public var description: String { rawValue }

        /// Codes are equal when their raw values are; ``kind`` is not compared.
        public static func == (lhs: Code, rhs: Code) -> Bool { lhs.rawValue == rhs.rawValue }
        /// Hashes the raw value only, consistent with `==`.
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
    /// A request field or argument is missing or out of range (for example a non-positive validity).
    public static let malformedInput = Self("malformedInput", kind: .invalidInput)
    /// Text is not PEM, or carries an unexpected label.
    public static let malformedPEM = Self("malformedPEM", kind: .invalidInput)
    /// Bytes are not the expected DER structure (PKCS #8 or encrypted key files).
    public static let malformedDER = Self("malformedDER", kind: .invalidInput)
    /// A request body or data file is not valid JSON for its type, or is empty.
    public static let malformedJSON = Self("malformedJSON", kind: .invalidInput)
    /// A request body, or a batch inside it, exceeds the accepted size.
    public static let bodyTooLarge = Self("bodyTooLarge", kind: .tooLarge)

    // CSR policy
    /// The CSR is empty or cannot be parsed.
    public static let malformedCSR = Self("malformedCSR", kind: .invalidInput)
    /// The CSR's signature does not verify with its own public key (no proof of possession).
    public static let csrSignatureInvalid = Self("csrSignatureInvalid", kind: .invalidInput)
    /// The CSR exceeds ``CSRPolicy/maximumBytes``.
    public static let csrTooLarge = Self("csrTooLarge", kind: .tooLarge)
    /// The key's algorithm is valid but not allowed by the policy or profile.
    public static let keyAlgorithmNotAllowed = Self("keyAlgorithmNotAllowed", kind: .invalidInput)
    /// An RSA key is smaller than the accepted minimum.
    public static let keyTooWeak = Self("keyTooWeak", kind: .invalidInput)
    /// A key algorithm or curve Keygate does not handle.
    public static let unsupportedKey = Self("unsupportedKey", kind: .invalidInput)

    // Issuance
    /// No certificate profile has the requested name.
    public static let unknownProfile = Self("unknownProfile", kind: .invalidInput)
    /// A common name, DNS name or IP address in a ``CertificateIdentity`` is not acceptable.
    public static let invalidSubject = Self("invalidSubject", kind: .invalidInput)
    /// The CA key (HSM, Key Vault) cannot be reached now; carries `retryAfter`.
    public static let signerUnavailable = Self("signerUnavailable", kind: .unavailable)
    /// Signing failed or produced an unusable signature.
    public static let signingFailed = Self("signingFailed", kind: .internalError)

    // Keys at rest
    /// The passphrase does not decrypt the CA key file.
    public static let wrongPassphrase = Self("wrongPassphrase", kind: .unauthorized)
    /// An encrypted key uses a scheme other than PBES2 with PBKDF2 and AES-CBC, or implausible parameters.
    public static let unsupportedKeyEncryption = Self("unsupportedKeyEncryption", kind: .invalidInput)

    // Revocation
    /// A revocation reason name that ``RevocationReason/init(name:)`` does not know.
    public static let unknownRevocationReason = Self("unknownRevocationReason", kind: .invalidInput)
    /// An OCSP request that cannot be decoded, or asks about too many certificates.
    public static let malformedOCSPRequest = Self("malformedOCSPRequest", kind: .invalidInput)

    // Generic
    /// Generic: the thing named does not exist.
    public static let notFound = Self("notFound", kind: .notFound)
    /// Generic: the request conflicts with the current state.
    public static let conflict = Self("conflict", kind: .conflict)
    /// Generic: no or wrong credentials.
    public static let unauthorized = Self("unauthorized", kind: .unauthorized)
    /// Generic: an unexpected condition; the message says which.
    public static let internalError = Self("internalError", kind: .internalError)
    /// Generic: a dependency is unavailable; retry later.
    public static let unavailable = Self("unavailable", kind: .unavailable)
}
