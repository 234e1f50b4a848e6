public import AsyncHTTPClient
public import Foundation
import KeygatePKI
import NIOCore
import NIOHTTP1

/// Client-credentials tokens from Microsoft Entra ID (`POST {authority}/{tenant}/oauth2/v2.0/token`),
/// cached and refreshed five minutes before they expire.
public actor AADTokenProvider {
    /// The AAD v2.0 token endpoint (`https://login.microsoftonline.com/TENANT/oauth2/v2.0/token`, or the sandbox's).
    public let tokenEndpoint: String
    let clientID: String
    let clientSecret: String
    let scope: String
    let http: HTTPClient
    /// Timeouts and retries of the token requests.
    public nonisolated let policy: AzureRequestPolicy
    private var cached: (token: String, expiresAt: Date)?

    /// - Parameter tokenEndpoint: e.g. `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    public init(
        tokenEndpoint: String, clientID: String, clientSecret: String, scope: String, http: HTTPClient,
        policy: AzureRequestPolicy = .standard
    ) {
        self.policy = policy
        self.tokenEndpoint = tokenEndpoint
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scope = scope
        self.http = http
    }

    /// A bearer token (`Bearer …`), kept until five minutes before it expires; throws `signingFailed` when AAD
    /// refuses the client and `signerUnavailable` when it cannot be reached.
    public func token(now: Date = Date()) async throws -> String {
        if let cached, cached.expiresAt.timeIntervalSince(now) > 300 { return cached.token }
        func encode(_ value: String) -> String {
            value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
                ?? value
        }
        var request = HTTPClientRequest(url: tokenEndpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let form = [
            "client_id=\(encode(clientID))", "client_secret=\(encode(clientSecret))", "grant_type=client_credentials",
            "scope=\(encode(scope))",
        ].joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: form))
        let (status, body, retryAfter) = try await AzureHTTP.send(request, http: http, policy: policy)
        guard status == 200 else {
            throw AzureHTTP.error(status: status, body: body, retryAfter: retryAfter, service: "the AAD token endpoint")
        }
        struct Answer: Decodable {
            var access_token: String
            var expires_in: Int
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body)) else {
            throw KeygateError(.signerUnavailable, "the AAD token endpoint answered without a token", retryAfter: 5)
        }
        cached = (answer.access_token, now + TimeInterval(answer.expires_in))
        return answer.access_token
    }
}

/// Shared HTTP plumbing: send, collect, and turn Azure's failures into Keygate errors.
enum AzureHTTP {
    /// Sends `request`, retrying as Azure's guidance says: a dropped connection, a timeout, 429 and
    /// 5xx are retried with exponential backoff and jitter, waiting the Retry-After Azure asks for when
    /// it is short; a longer Retry-After is handed to the caller with the answer.
    static func send(
        _ request: HTTPClientRequest, http: HTTPClient, policy: AzureRequestPolicy, pacer: CallPacer? = nil
    ) async throws -> (Int, [UInt8], Int?) {
        var attempt = 0
        while true {
            attempt += 1
            try await pacer?.acquire()
            let answer: (Int, [UInt8], Int?)
            do {
                let response = try await http.execute(request, timeout: policy.timeout)
                let buffer = try await response.body.collect(upTo: 4 << 20)
                answer = (
                    Int(response.status.code), Array(buffer.readableBytesView),
                    response.headers.first(name: "Retry-After").flatMap(Int.init)
                )
            } catch {
                guard attempt < policy.attempts else {
                    throw KeygateError(.signerUnavailable, "Azure cannot be reached: \(error)", retryAfter: 5)
                }
                try await Task.sleep(for: .seconds(policy.backoff(attempt: attempt)))
                continue
            }
            let (status, _, retryAfter) = answer
            let temporary = status == 429 || status == 500 || status == 502 || status == 503 || status == 504
            guard temporary, attempt < policy.attempts else { return answer }
            if let retryAfter {
                guard Double(retryAfter) <= policy.maximumWait else { return answer }
                try await Task.sleep(for: .seconds(max(Double(retryAfter), policy.backoff(attempt: attempt))))
            } else {
                try await Task.sleep(for: .seconds(policy.backoff(attempt: attempt)))
            }
        }
    }

    /// 429 and 5xx are temporary (`signerUnavailable`, 503 with Retry-After); anything else is a refusal.
    static func error(status: Int, body: [UInt8], retryAfter: Int?, service: String) -> KeygateError {
        let text = String(decoding: body.prefix(400), as: UTF8.self)
        if status == 429 || status >= 500 {
            return KeygateError(.signerUnavailable, "\(service) answered \(status)", retryAfter: retryAfter ?? 5)
        }
        return KeygateError(.signingFailed, "\(service) refused the request (\(status)): \(text)")
    }
}
