public import KeygatePKI

/// Every error code KeygateStore throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // DatabaseStore
    /// The database cannot be opened or reached, or is busy or locked (then with `retryAfter` 1); retry later.
    public static let storeUnavailable = Self("storeUnavailable", kind: .unavailable)
    /// A database location (`--database`, `KEYGATE_DATABASE_URL`) that is not an SQLite path or a valid
    /// `postgres://USER@HOST:PORT/DATABASE` URL.
    public static let invalidDatabaseURL = Self("invalidDatabaseURL", kind: .invalidInput)
}

extension KeygateError.Code {
    /// `keygate db copy` was pointed at a database that already holds data.
    public static let databaseNotEmpty = Self("databaseNotEmpty", kind: .conflict)
}
