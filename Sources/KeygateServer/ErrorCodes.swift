public import KeygatePKI

/// Every error code KeygateServer throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // KeyCustody
    /// No PKCS#11 PIN was given (environment or file).
    public static let pkcs11PinMissing = Self("pkcs11PinMissing", kind: .invalidInput)

    // DataDirectory
    public static let dataDirectoryMissing = Self("dataDirectoryMissing", kind: .notFound)
    public static let dataDirectoryExists = Self("dataDirectoryExists", kind: .conflict)
    public static let passphraseMissing = Self("passphraseMissing", kind: .invalidInput)

    // ErrorMiddleware
    public static let routeNotFound = Self("routeNotFound", kind: .notFound)
    public static let methodNotAllowed = Self("methodNotAllowed", kind: .invalidInput)
    public static let unsupportedMediaType = Self("unsupportedMediaType", kind: .invalidInput)

    // ClientGuard
    /// Too many requests from one client address: wait for the Retry-After.
    public static let rateLimited = Self("rateLimited", kind: .rateLimited)
}
