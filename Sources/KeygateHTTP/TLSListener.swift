public import HummingbirdCore
import HummingbirdTLS
import NIOCore
public import NIOSSL

/// The TLS setup of every Keygate HTTPS listener (the server's and the sandbox's): one certificate
/// chain and key from PEM files, TLS 1.2 or later, and a client certificate that is asked for but
/// not required. TLS accepts any client certificate; the routes decide what it proves (a device
/// renewing over mTLS, a device registering with the sandbox's DPS).
public enum TLSListener {
    /// The server-side TLS configuration for a chain (leaf first) and key, both PEM files.
    public static func configuration(chainFile: String, keyFile: String) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(chainFile)
        let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .optionalVerification
        return tls
    }

    /// The Hummingbird HTTP/1.1-over-TLS server for `tls`, passing any client certificate on to the routes.
    public static func http1(_ tls: TLSConfiguration) throws -> HTTPServerBuilder {
        try .tls(
            .http1(),
            configuration: TLSChannelConfiguration(
                tlsConfiguration: tls,
                customVerificationCallback: { _, promise in promise.succeed(.certificateVerified) }))
    }
}
