public import AsyncHTTPClient
import Foundation
public import KeygatePKI
import NIOCore
public import NIOHTTP1

/// One JSON call to an Azure REST API with the retry policy, answering status, body and headers.
public struct AzureAnswer: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var retryAfter: Int?

    /// The body as a JSON object (empty when it is not one).
    public var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    public var text: String { String(decoding: body.prefix(600), as: UTF8.self) }
}

/// The transport the Azure clients share: base URL, an authorization header per call, the policy.
public struct AzureJSONClient: Sendable {
    public let baseURL: String
    public let http: HTTPClient
    public let policy: AzureRequestPolicy
    let authorization: @Sendable () async throws -> String
    let service: String

    public init(
        baseURL: String, service: String, http: HTTPClient, policy: AzureRequestPolicy = .standard,
        authorization: @escaping @Sendable () async throws -> String
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.service = service
        self.http = http
        self.policy = policy
        self.authorization = authorization
    }

    /// A client for a service that takes SAS tokens (DPS service API, IoT Hub registry).
    public init(
        sas credentials: SharedAccessSignatureToken.ConnectionString, service: String, http: HTTPClient,
        policy: AzureRequestPolicy
    ) {
        self.init(
            baseURL: "https://\(credentials.hostName)", service: service, http: http, policy: policy,
            authorization: { try credentials.token() })
    }

    /// The error for an answer the service refused.
    public func refused(_ answer: AzureAnswer, _ what: String) -> KeygateError {
        KeygateError(.azureRefused, "\(service) refused \(what) (\(answer.status)): \(answer.text)")
    }

    /// Sends `body` (JSON) to `path` (which carries its api-version); throws for 429/5xx after retries
    /// (`azureUnavailable` with Retry-After) and 401/403 (`azureUnauthorized`); other statuses are answered.
    public func call(
        _ method: HTTPMethod, _ path: String, body: Any? = nil, headers: [(String, String)] = []
    ) async throws -> AzureAnswer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        let credential: String
        do {
            credential = try await authorization()
        } catch let error as KeygateError where error.code == .signingFailed {
            // The AAD token endpoint refused the client: the connector's credentials are wrong.
            throw KeygateError(.azureUnauthorized, "\(service): \(error.message)")
        } catch let error as KeygateError where error.code == .signerUnavailable {
            throw KeygateError(.azureUnavailable, "\(service): \(error.message)", retryAfter: error.retryAfter)
        }
        request.headers.add(name: "Authorization", value: credential)
        request.headers.add(name: "Accept", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            request.body = .bytes(
                ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
        }
        let (status, data, retryAfter): (Int, [UInt8], Int?)
        do {
            (status, data, retryAfter) = try await AzureHTTP.send(request, http: http, policy: policy)
        } catch let error as KeygateError where error.code == .signerUnavailable {
            throw KeygateError(
                .azureUnavailable, "\(service) cannot be reached: \(error.message)", retryAfter: error.retryAfter)
        }
        let answer = AzureAnswer(status: status, body: data, retryAfter: retryAfter)
        if status == 429 || status >= 500 {
            throw KeygateError(
                .azureUnavailable, "\(service) answered \(status): \(answer.text)", retryAfter: retryAfter ?? 5)
        }
        if status == 401 || status == 403 {
            throw KeygateError(.azureUnauthorized, "\(service) refused the credentials (\(status)): \(answer.text)")
        }
        return answer
    }

    /// Percent-encodes one path segment.
    public static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:")))
            ?? text
    }
}
