public import KeygatePKI

/// Every error code KeygateServer throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // KeyCustody
    /// No PKCS#11 PIN was given (environment or file).
    public static let pkcs11PinMissing = Self("pkcs11PinMissing", kind: .invalidInput)

    // DataDirectory
    /// The data folder or a file in it is missing (run `keygate init` first).
    public static let dataDirectoryMissing = Self("dataDirectoryMissing", kind: .notFound)
    /// `init` was pointed at a folder that already holds a Keygate data folder.
    public static let dataDirectoryExists = Self("dataDirectoryExists", kind: .conflict)
    /// `init` was pointed at a PostgreSQL database that already holds a deployment (join it with `node join`).
    public static let databaseHoldsDeployment = Self("databaseHoldsDeployment", kind: .conflict)
    /// `node join` was pointed at a deployment on SQLite (one node only; `keygate db copy` moves it).
    public static let nodeJoinNeedsPostgres = Self("nodeJoinNeedsPostgres", kind: .invalidInput)
    /// The CA passphrase is needed but was not given, cannot be read or is shorter than 8 characters.
    public static let passphraseMissing = Self("passphraseMissing", kind: .invalidInput)

    // AuditAnchor
    /// The audit chain does not verify (after a database copy, or when checked).
    public static let auditChainBroken = Self("auditChainBroken", kind: .internalError)
    /// A line of the audit checkpoint file is not a checkpoint (the file was edited or damaged).
    public static let auditCheckpointUnreadable = Self("auditCheckpointUnreadable", kind: .internalError)

    // EST
    /// An EST request came without a TLS client certificate or HTTP Basic credentials (401, with
    /// `WWW-Authenticate`).
    public static let estAuthenticationRequired = Self("estAuthenticationRequired", kind: .unauthorized)
    /// `simplereenroll` needs the device's current Keygate certificate as the TLS client certificate.
    public static let estReenrollNeedsKeygateCertificate = Self(
        "estReenrollNeedsKeygateCertificate", kind: .forbidden)
    /// The EST label (the group in the URL) is not the device's group.
    public static let estLabelMismatch = Self("estLabelMismatch", kind: .forbidden)
    /// `serverkeygen` and `fullcmc` are not offered: device keys never leave the device.
    public static let estOperationNotSupported = Self("estOperationNotSupported", kind: .invalidInput)
    /// The request body is not base64 of DER (RFC 8951), or not a PKCS #10 request.
    public static let estMalformedRequest = Self("estMalformedRequest", kind: .invalidInput)

    // ErrorMiddleware
    /// No route matches the request's path.
    public static let routeNotFound = Self("routeNotFound", kind: .notFound)
    /// The path exists but not with the request's HTTP method.
    public static let methodNotAllowed = Self("methodNotAllowed", kind: .invalidInput)
    /// The request body is not of the content type the route reads (such as `application/json`).
    public static let unsupportedMediaType = Self("unsupportedMediaType", kind: .invalidInput)

    // ClientGuard
    /// Too many requests from one client address: wait for the Retry-After.
    public static let rateLimited = Self("rateLimited", kind: .rateLimited)

    // Dashboard
    /// A dashboard form was posted without its session's CSRF token (or with another one).
    public static let csrfTokenInvalid = Self("csrfTokenInvalid", kind: .forbidden)
    /// The allowlist import named in a dashboard URL is not known to this node (finished long ago, or
    /// started on another node).
    public static let importNotFound = Self("importNotFound", kind: .notFound)
}
