public import AsyncHTTPClient
import Foundation
public import KeygateAttestation
import NIOCore
import NIOHTTP1
import NIOSSL

/// Talks to `/device/v1` over HTTPS, trusting only the CA given.
public struct DeviceClient: Sendable {
    public let baseURL: String
    let http: HTTPClient

    /// An error answer from Keygate, with its stable code.
    public struct APIError: Error, CustomStringConvertible, Sendable {
        public var status: Int
        public var code: String
        public var message: String
        public var retryAfter: Int?
        public var description: String { "\(code): \(message) (HTTP \(status))" }
    }

    public init(baseURL: String, caCertificateFile: String?, http: HTTPClient? = nil) throws {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        if let http {
            self.http = http
        } else {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caCertificateFile { tls.trustRoots = .file(caCertificateFile) }
            self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        }
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    public func challenge(_ deviceID: String) async throws -> DeviceAPI.Challenge {
        try await post("/device/v1/challenge", DeviceAPI.ChallengeRequest(deviceId: deviceID))
    }

    public func register(_ request: DeviceAPI.RegisterRequest) async throws -> DeviceAPI.StatusResponse {
        try await post("/device/v1/register", request)
    }

    public func enroll(_ request: DeviceAPI.EnrollRequest) async throws -> DeviceAPI.EnrollResponse {
        try await post("/device/v1/enroll", request)
    }

    public func status(_ request: DeviceAPI.StatusRequest) async throws -> DeviceAPI.StatusResponse {
        try await post("/device/v1/status", request)
    }

    public func forkProof(_ request: DeviceAPI.ForkProofRequest) async throws {
        let _: DeviceAPI.ErrorBody = try await post("/device/v1/fork-proof", request)
    }

    func post<Body: Encodable, Answer: Decodable>(_ path: String, _ body: Body) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        let data = Data(bytes.readableBytesView)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard (200..<300).contains(Int(response.status.code)) else {
            let error = try? decoder.decode(DeviceAPI.ErrorBody.self, from: data)
            throw APIError(
                status: Int(response.status.code), code: error?.code ?? "http\(response.status.code)",
                message: error?.message ?? "unexpected answer",
                retryAfter: response.headers.first(name: "Retry-After").flatMap(Int.init))
        }
        return try decoder.decode(Answer.self, from: data)
    }
}
