public import AsyncHTTPClient
import Foundation
public import KeygatePKI
import NIOCore
public import NIOHTTP1

/// One JSON call to an Azure REST API with the retry policy, answering status, body and headers.
public struct AzureAnswer: Sendable {
    /// The HTTP status.
    public var status: Int
    /// The body as received (at most 4 MiB).
    public var body: [UInt8]
    /// The `Retry-After` header, in seconds, when the service sent one.
    public var retryAfter: Int?

    /// The body as a JSON object (empty when it is not one).
    public var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    /// The start of the body as text (600 bytes), for error messages.
    public var text: String { String(decoding: body.prefix(600), as: UTF8.self) }

    /// Azure's own words for a refusal: its error code and message as each service writes them
    /// (DPS `{errorCode, message}`, IoT Hub `{Message: "ErrorCode:…;…"}` or `{ExceptionMessage}`, IoT
    /// Central and Key Vault `{error: {code, message}}`), else the start of the body.
    public var errorSummary: String {
        let json = self.json
        if let code = json["errorCode"], let message = json["message"] as? String {
            return "errorCode \(code): \(message)"
        }
        if let error = json["error"] as? [String: Any], let message = error["message"] as? String {
            return "\(error["code"] as? String ?? "error"): \(message)"
        }
        if let message = (json["Message"] ?? json["message"] ?? json["ExceptionMessage"]) as? String {
            return message
        }
        return text
    }

    /// Whether a refusal is permanent: a 4xx other than 408 (timeout), 409 (conflict), 412 (changed
    /// meanwhile) and 429 (throttled) will not change by itself; the request must not be repeated as is.
    public var isPermanentRefusal: Bool {
        (400..<500).contains(status) && ![408, 409, 412, 429].contains(status)
    }
}

/// The transport the Azure clients share: base URL, an authorization header per call, the policy.
public struct AzureJSONClient: Sendable {
    /// The service's base URL, without a trailing slash.
    public let baseURL: String
    /// The HTTP client the calls go through.
    public let http: HTTPClient
    /// Timeouts and retries of every call.
    public let policy: AzureRequestPolicy
    let authorization: @Sendable () async throws -> String
    let service: String
    /// Spaces the calls (every attempt) when the service has a throttle to stay under.
    let pacer: CallPacer?

    /// A client for `baseURL` that asks `authorization` for each call's `Authorization` header;
    /// `pacer` spaces the calls under a service's throttle.
    public init(
        baseURL: String, service: String, http: HTTPClient, policy: AzureRequestPolicy = .standard,
        pacer: CallPacer? = nil, authorization: @escaping @Sendable () async throws -> String
    ) {
        self.pacer = pacer
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.service = service
        self.http = http
        self.policy = policy
        self.authorization = authorization
    }

    /// A client for a service that takes SAS tokens (DPS service API, IoT Hub registry).
    public init(
        sas credentials: SharedAccessSignatureToken.ConnectionString, service: String, http: HTTPClient,
        policy: AzureRequestPolicy, pacer: CallPacer? = nil
    ) {
        self.init(
            baseURL: "https://\(credentials.hostName)", service: service, http: http, policy: policy, pacer: pacer,
            authorization: { try credentials.token() })
    }

    /// The error for an answer the service refused.
    /// `azureRefused` for a permanent refusal (see ``AzureAnswer/isPermanentRefusal``), else
    /// `azureConflict` (worth another try), both with Azure's error code and message.
    public func refused(_ answer: AzureAnswer, _ what: String) -> KeygateError {
        KeygateError(
            answer.isPermanentRefusal ? .azureRefused : .azureConflict,
            "\(service) refused \(what) (HTTP \(answer.status), \(answer.errorSummary))",
            retryAfter: answer.isPermanentRefusal ? nil : answer.retryAfter ?? 2)
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
            (status, data, retryAfter) = try await AzureHTTP.send(request, http: http, policy: policy, pacer: pacer)
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
            throw KeygateError(
                .azureUnauthorized, "\(service) refused the credentials (HTTP \(status), \(answer.errorSummary))")
        }
        return answer
    }

    /// Percent-encodes one path segment.
    public static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:")))
            ?? text
    }
}
