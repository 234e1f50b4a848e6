public import Hummingbird
import NIOCore
import NIOSSL

/// The request context of every Keygate route: Hummingbird's core storage plus the
/// authenticated admin, once the admin middleware has checked the bearer token, and the channel
/// (to read a device's TLS client certificate).
public struct KeygateRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The name of the admin token that authenticated this request.
    public var adminName: String?
    let channel: any Channel

    /// The caller's IP address (rate limits and failure counts are kept per address).
    var clientAddress: String { channel.remoteAddress?.ipAddress ?? "unknown" }

    /// Who the audit log names for this request's changes: `admin:` + the token's name.
    var actor: String { "admin:\(adminName ?? "unknown")" }

    /// Creates the context of a new request on `source`'s channel.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// Bodies are read explicitly with ``Request/keygateBody(limit:)``; this caps `decode`.
    public var maxUploadSize: Int { 1 << 20 }

    /// The TLS client certificate (DER) the caller presented, if any. TLS accepts any certificate;
    /// the route decides what it proves.
    func clientCertificate() async -> [UInt8]? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        return try? certificate.toDERBytes()
    }
}
