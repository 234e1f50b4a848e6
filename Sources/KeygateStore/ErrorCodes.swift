public import KeygatePKI

/// Every error code KeygateStore throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // SQLiteStore
    public static let storeUnavailable = Self("storeUnavailable", kind: .unavailable)
}
