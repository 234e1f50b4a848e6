public import AsyncHTTPClient
import Foundation
public import KeygateAttestation
import NIOCore
import NIOHTTP1
public import NIOSSL

/// Talks to `/device/v1` over HTTPS, trusting only the CA given.
public struct DeviceClient: Sendable {
    /// Keygate's HTTPS base URL, without a trailing slash.
    public let baseURL: String
    let http: HTTPClient
    /// Trust for Keygate's listener (also used for the mTLS renewal calls).
    let caCertificateFile: String?

    /// An error answer from Keygate, with its stable code.
    public struct APIError: Error, CustomStringConvertible, Sendable {
        /// The HTTP status.
        public var status: Int
        /// Keygate's error code, such as `deviceNotAllowlisted` or `forkProofRequired`.
        public var code: String
        /// Keygate's sentence for a human.
        public var message: String
        /// Seconds from the `Retry-After` header; `nil` when there was none.
        public var retryAfter: Int?
        /// `code: message (HTTP status)`.
        public var description: String { "\(code): \(message) (HTTP \(status))" }
    }

    /// Creates a client for `baseURL` that trusts `caCertificateFile` (`nil`: the system's roots), on `http` or
    /// an HTTP client of its own.
    public init(baseURL: String, caCertificateFile: String?, http: HTTPClient? = nil) throws {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.caCertificateFile = caCertificateFile
        if let http {
            self.http = http
        } else {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caCertificateFile { tls.trustRoots = .file(caCertificateFile) }
            self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        }
    }

    /// Shuts down the HTTP client.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// Asks for a single-use challenge bound to `deviceID` (`POST /device/v1/challenge`).
    public func challenge(_ deviceID: String) async throws -> DeviceAPI.Challenge {
        let challenge: DeviceAPI.Challenge = try await post(
            "/device/v1/challenge", DeviceAPI.ChallengeRequest(deviceId: deviceID))
        // The agent counts from the server's epoch (epoch + 1, epoch - 1): an impossible one is refused
        // here rather than trapping later.
        guard (0...(1 << 48)).contains(challenge.epoch) else {
            throw APIError(
                status: 200, code: "malformedAnswer",
                message: "the server's challenge names epoch \(challenge.epoch); epochs are 0 to 2^48")
        }
        return challenge
    }

    /// Sends DDK session 0 (`POST /device/v1/register`).
    public func register(_ request: DeviceAPI.RegisterRequest) async throws -> DeviceAPI.StatusResponse {
        try await post("/device/v1/register", request)
    }

    /// Sends an attested CSR (`POST /device/v1/enroll`); answers the chain, or `pendingApproval`.
    public func enroll(_ request: DeviceAPI.EnrollRequest) async throws -> DeviceAPI.EnrollResponse {
        try await post("/device/v1/enroll", request)
    }

    /// Asks for the device's state and provisioning, attested (`POST /device/v1/status`).
    public func status(_ request: DeviceAPI.StatusRequest) async throws -> DeviceAPI.StatusResponse {
        try await post("/device/v1/status", request)
    }

    /// Proves the previous epoch's key after `forkProofRequired` (`POST /device/v1/fork-proof`).
    public func forkProof(_ request: DeviceAPI.ForkProofRequest) async throws {
        let _: DeviceAPI.ErrorBody = try await post("/device/v1/fork-proof", request)
    }

    /// Renews over mTLS: the TLS client certificate is the device's current one.
    public func renew(_ request: DeviceAPI.RenewRequest, identity: TLSClientIdentity) async throws
        -> DeviceAPI.EnrollResponse
    {
        try await post("/device/v1/renew", request, tls: tls(identity))
    }

    /// When to renew, asked over mTLS with the device's current certificate.
    public func renewalInfo(identity: TLSClientIdentity) async throws -> DeviceAPI.RenewalInfo {
        var request = HTTPClientRequest(url: baseURL + "/device/v1/renewal")
        request.tlsConfiguration = try tls(identity)
        return try await execute(request)
    }

    /// A certificate chain and its private key, to present as a TLS client.
    public struct TLSClientIdentity: Sendable {
        /// The certificate first, then its issuing CA.
        public var certificateChain: [NIOSSLCertificate]
        /// The certificate's private key.
        public var privateKey: NIOSSLPrivateKey

        /// Creates an identity.
        public init(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    private func tls(_ identity: TLSClientIdentity) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caCertificateFile { tls.trustRoots = .file(caCertificateFile) }
        tls.certificateChain = identity.certificateChain.map { .certificate($0) }
        tls.privateKey = .privateKey(identity.privateKey)
        return tls
    }

    func post<Body: Encodable, Answer: Decodable>(_ path: String, _ body: Body, tls: TLSConfiguration? = nil)
        async throws -> Answer
    {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        request.tlsConfiguration = tls
        return try await execute(request)
    }

    private func execute<Answer: Decodable>(_ request: HTTPClientRequest) async throws -> Answer {
        let response: HTTPClientResponse
        let data: Data
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            data = Data(try await response.body.collect(upTo: 4 << 20).readableBytesView)
        } catch {
            // A certificate the CA file does not trust is a setting to fix; anything else (a refused or
            // dropped connection, a timeout) may pass, and callers retry it.
            if let untrusted = untrustedServer(error) { throw untrusted }
            throw error
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard (200..<300).contains(Int(response.status.code)) else {
            guard let error = try? decoder.decode(DeviceAPI.ErrorBody.self, from: data) else {
                throw AgentError(
                    "\(baseURL) answered HTTP \(response.status.code) without a Keygate error: is --server Keygate's "
                        + "HTTPS address (the one `keygate serve` prints first)?", code: "notKeygate")
            }
            throw APIError(
                status: Int(response.status.code), code: error.code, message: error.message,
                retryAfter: response.headers.first(name: "Retry-After").flatMap(Int.init))
        }
        do {
            return try decoder.decode(Answer.self, from: data)
        } catch {
            throw AgentError(
                "\(baseURL) answered something that is not Keygate's device API: is --server Keygate's HTTPS "
                    + "address?", code: "notKeygate")
        }
    }

    /// The operator's error when the server's certificate is not trusted by the CA file; `nil` otherwise.
    private func untrustedServer(_ error: any Error) -> AgentError? {
        let text = String(describing: error)
        guard text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") else {
            return nil
        }
        let trust = caCertificateFile.map { "--ca-cert \($0)" } ?? "the system's roots"
        return AgentError(
            "the TLS handshake with \(baseURL) failed: its certificate is not trusted by \(trust) (give the root "
                + "CA of the Keygate you enroll with: ca/root.crt.pem in its data folder) (\(text))",
            code: "tlsUntrusted")
    }
}
