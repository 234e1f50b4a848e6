public import HummingbirdCore
import HummingbirdTLS
public import NIOCore
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
        // TLS 1.2: forward-secret AEAD suites only (no CBC, no SHA-1 MACs); TLS 1.3's are all AEAD.
        tls.cipherSuites = aeadCipherSuites
        // What a client may sign its CertificateVerify with (listed in the certificate request): no SHA-1.
        tls.verifySignatureAlgorithms = clientSignatureAlgorithms
        return tls
    }

    /// The TLS 1.2 suites offered: ECDHE with AES-GCM or ChaCha20-Poly1305.
    public static let aeadCipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// Signature algorithms accepted from clients: ECDSA, RSA-PSS and PKCS #1 with SHA-2, and Ed25519.
    public static let clientSignatureAlgorithms: [SignatureAlgorithm] = [
        .ecdsaSecp256R1Sha256, .ecdsaSecp384R1Sha384, .ecdsaSecp521R1Sha512, .ed25519, .rsaPssRsaeSha256,
        .rsaPssRsaeSha384, .rsaPssRsaeSha512, .rsaPkcs1Sha256, .rsaPkcs1Sha384, .rsaPkcs1Sha512,
    ]

    /// The Hummingbird HTTP/1.1-over-TLS server for `tls`, passing any client certificate on to the routes.
    /// With `limiter`, connections over its caps are closed at once; `idleTimeout` closes a connection that
    /// sends nothing (an unfinished TLS handshake or request head included) for that long.
    public static func http1(
        _ tls: TLSConfiguration, limiter: ConnectionLimiter? = nil, idleTimeout: TimeAmount? = nil
    ) throws -> HTTPServerBuilder {
        try .tls(
            plainHTTP1(limiter: limiter, idleTimeout: idleTimeout),
            configuration: TLSChannelConfiguration(
                tlsConfiguration: tls,
                customVerificationCallback: { _, promise in promise.succeed(.certificateVerified) }))
    }

    /// Plain HTTP/1.1 with the same connection caps and idle timeout.
    public static func plainHTTP1(limiter: ConnectionLimiter?, idleTimeout: TimeAmount?) -> HTTPServerBuilder {
        .http1(
            configuration: .init(
                additionalChannelHandlers: limiter.map { [$0.handler()] } ?? [], idleTimeout: idleTimeout))
    }
}
