public import KeygatePKI

/// Every error code KeygateStore throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // SQLiteStore
    /// The database cannot be opened, or is busy or locked (then with `retryAfter` 1); retry later.
    public static let storeUnavailable = Self("storeUnavailable", kind: .unavailable)
}
