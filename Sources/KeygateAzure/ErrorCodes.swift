public import KeygatePKI

/// Every error code KeygateAzure throws, in one place: stable strings clients may match on.
extension KeygateError.Code {
    // AzureJSONClient
    /// Azure (or the sandbox) is unavailable or throttling after retries: try again later.
    public static let azureUnavailable = Self("azureUnavailable", kind: .unavailable)
    /// Azure refused the connector's credentials.
    public static let azureUnauthorized = Self("azureUnauthorized", kind: .unauthorized)
    /// Azure refused the request itself (4xx other than 401/403/429).
    public static let azureRefused = Self("azureRefused", kind: .conflict)
}
