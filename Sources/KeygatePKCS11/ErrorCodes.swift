public import KeygatePKI

/// Every error code KeygatePKCS11 throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // PKCS11Module
    /// The PKCS#11 module cannot be loaded or is not a PKCS#11 module.
    public static let pkcs11ModuleUnusable = Self("pkcs11ModuleUnusable", kind: .invalidInput)
    /// No token with the configured label is present (the HSM is gone or misconfigured).
    public static let pkcs11TokenNotFound = Self("pkcs11TokenNotFound", kind: .unavailable)
    /// The token refused the PIN, or the PIN is locked.
    public static let pkcs11PinIncorrect = Self("pkcs11PinIncorrect", kind: .unauthorized)
    /// No key with the configured label is in the token.
    public static let pkcs11KeyNotFound = Self("pkcs11KeyNotFound", kind: .notFound)
    /// A PKCS#11 call failed for a reason that retrying will not fix.
    public static let pkcs11Failed = Self("pkcs11Failed", kind: .internalError)
}
