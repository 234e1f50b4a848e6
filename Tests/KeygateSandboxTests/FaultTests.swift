import AsyncHTTPClient
import Foundation
import KeygateSandbox
import KeygateTestSupport
import NIOCore
import NIOHTTP1
import Testing

/// Injected faults and quota mode, set through the sandbox's control endpoint.
@Suite struct FaultTests {
    @Test func theControlEndpointNeedsItsTokenAndChecksWhatItIsGiven() async throws {
        let running = try await KeyVaultTests.Running.start()
        defer { Task { await running.stop() } }
        let faultsURL = running.connection.control.faultsURL
        let (anonymous, _) = try await running.call(.GET, faultsURL)
        #expect(anonymous == 401)
        let (wrong, _) = try await running.call(.GET, faultsURL, token: "not-the-token")
        #expect(wrong == 401)
        let token = running.connection.control.token
        let (unknown, unknownBody) = try await running.call(
            .PUT, faultsURL + "/nowhere", json: ["rate": 0.5], token: token)
        #expect(unknown == 404 && (unknownBody["error"] as? [String: Any])?["code"] as? String == "unknownSurface")
        let (badRate, badBody) = try await running.call(
            .PUT, faultsURL + "/keyvault", json: ["rate": 1.5], token: token)
        #expect(badRate == 400 && (badBody["error"] as? [String: Any])?["code"] as? String == "invalidFaultSettings")
        let (badKind, _) = try await running.call(
            .PUT, faultsURL + "/keyvault", json: ["kinds": ["meteor"]], token: token)
        #expect(badKind == 400)

        // Down, then up: Key Vault answers 503 with Retry-After and its own error body, then serves again.
        let control = SandboxControlClient(connection: running.connection)
        let report = try await control.set(.init(down: true, retryAfterSeconds: 7), surface: .keyVault)
        #expect(report.settings[.keyVault]?.down == true && report.settings[.aad]?.down == false)
        let (token200, tokenBody) = try await running.token()
        #expect(token200 == 200, "AAD is another surface and stays up")
        let bearer = try #require(tokenBody["access_token"] as? String)
        let keyURL = running.connection.keyVault.vaultURL + "/keys/absent?api-version=7.4"
        let (down, downBody, retryAfter) = try await running.callWithHeaders(.GET, keyURL, token: bearer)
        #expect(down == 503 && retryAfter == "7")
        #expect((downBody["error"] as? [String: Any])?["code"] as? String == "ServiceUnavailable")
        try await control.set(.init(down: false), surface: .keyVault)
        let (up, _) = try await running.call(.GET, keyURL, token: bearer)
        #expect(up == 404, "back up: the vault itself answers (no such key)")
        let counts = try await control.report()
        #expect(counts.injected[.keyVault] == 1)
    }

    @Test func withThirtyPercentFaultsAClientThatRetriesGetsEveryCallThrough() async throws {
        let running = try await KeyVaultTests.Running.start()
        defer { Task { await running.stop() } }
        let control = SandboxControlClient(connection: running.connection)
        try await control.set(.init(rate: 0.3, kinds: FaultKind.allCases, timeoutSeconds: 1.5, retryAfterSeconds: 0))
        let (tokenStatus, tokenBody) = try await running.retrying { try await running.token() }
        #expect(tokenStatus == 200)
        let bearer = try #require(tokenBody["access_token"] as? String)
        let vault = running.connection.keyVault.vaultURL
        let (created, _) = try await running.retrying {
            try await running.call(
                .POST, vault + "/keys/retried/create?api-version=7.4", json: ["kty": "EC-HSM", "crv": "P-256"],
                token: bearer)
        }
        #expect(created == 200)
        var succeeded = 0
        for _ in 0..<40 {
            let (status, body) = try await running.retrying {
                try await running.call(.GET, vault + "/keys/retried?api-version=7.4", token: bearer)
            }
            if status == 200, (body["key"] as? [String: Any])?["kid"] != nil { succeeded += 1 }
        }
        #expect(succeeded == 40)
        let report = try await control.report()
        let injected = (report.injected[.keyVault] ?? 0) + (report.injected[.aad] ?? 0)
        #expect(injected >= 5, "30% of at least 42 calls should have failed first: \(report.injected)")
    }

    @Test func quotaModeAnswersABurstWith429AndRetryAfter() async throws {
        let running = try await KeyVaultTests.Running.start()
        defer { Task { await running.stop() } }
        let control = SandboxControlClient(connection: running.connection)
        let published = try await control.set(.init(quota: true), surface: .keyVault)
        #expect(published.settings[.keyVault]?.quota == true && published.settings[.keyVault]?.quotaLimit == nil)
        // Key Vault's published limit is 1,000 transactions per 10 s; a smaller one over a long window
        // makes the burst's outcome independent of the machine's speed: 1,040 calls, 1,000 allowed per 10 min.
        try await control.set(.init(quotaLimit: 1_000, quotaWindowSeconds: 600), surface: .keyVault)
        let url = running.connection.keyVault.vaultURL + "/keys/any?api-version=7.4"
        let results = try await withThrowingTaskGroup(of: [(Int, String?)].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var seen: [(Int, String?)] = []
                    for _ in 0..<130 {
                        let (status, _, retryAfter) = try await running.callWithHeaders(.GET, url)
                        seen.append((status, retryAfter))
                    }
                    return seen
                }
            }
            return try await group.reduce(into: [(Int, String?)]()) { $0 += $1 }
        }
        let throttled = results.filter { $0.0 == 429 }
        #expect(results.filter { $0.0 == 401 }.count == 1_000, "the first 1,000 reach the vault (and lack a token)")
        #expect(throttled.count == 40)
        #expect(throttled.allSatisfy { Int($0.1 ?? "").map { (1...600).contains($0) } ?? false })
    }
}

extension KeyVaultTests.Running {
    /// Like `call`, also answering the Retry-After header.
    func callWithHeaders(_ method: HTTPMethod, _ url: String, token: String? = nil) async throws
        -> (Int, [String: Any], String?)
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await http.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        return (Int(response.status.code), object, response.headers.first(name: "Retry-After"))
    }

    /// Retries as Azure's guidance says: 429 and 5xx, dropped connections and timeouts, with backoff
    /// (bounded: at most 30 attempts).
    func retrying(_ body: () async throws -> (Int, [String: Any])) async throws -> (Int, [String: Any]) {
        var last: (Int, [String: Any]) = (0, [:])
        for attempt in 0..<30 {
            do {
                last = try await body()
                if last.0 != 429 && last.0 < 500 { return last }
            } catch {
                last = (0, ["error": "\(error)"])
            }
            try await Task.sleep(for: .milliseconds(20 * min(attempt + 1, 5)))
        }
        return last
    }
}
