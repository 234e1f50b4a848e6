public import Hummingbird

/// The request context of every Keygate route: Hummingbird's core storage plus the
/// authenticated admin, once the admin middleware has checked the bearer token.
public struct KeygateRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The name of the admin token that authenticated this request.
    public var adminName: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }

    /// Bodies are read explicitly with ``Request/keygateBody(limit:)``; this caps `decode`.
    public var maxUploadSize: Int { 1 << 20 }
}
