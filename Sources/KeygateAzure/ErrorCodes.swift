public import KeygatePKI

/// Every error code KeygateAzure throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // AzureJSONClient
    /// Azure (or the sandbox) is unavailable or throttling after retries: try again later.
    public static let azureUnavailable = Self("azureUnavailable", kind: .unavailable)
    /// Azure refused the connector's credentials.
    public static let azureUnauthorized = Self("azureUnauthorized", kind: .unauthorized)
    /// Azure refused the request for good (a 4xx other than 408, 409, 412 and 429): repeating it as it
    /// is cannot help; the outbox dead-letters it at once.
    public static let azureRefused = Self("azureRefused", kind: .conflict)
    /// Azure refused the request for now (408, 409, 412): worth another try.
    public static let azureConflict = Self("azureConflict", kind: .conflict)
}
