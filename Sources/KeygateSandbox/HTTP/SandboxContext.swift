import Hummingbird
import NIOCore
import NIOSSL

/// The sandbox's request context: the channel, to read the TLS client certificate a device presents.
struct SandboxContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The TLS client certificate (DER), if the client presented one.
    func clientCertificate() async -> [UInt8]? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        return try? certificate.toDERBytes()
    }
}
