import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import KeygateDomain
import KeygateHTTP
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import NIOCore
import NIOHTTP1
import Testing

/// CRL, OCSP, CA chain and operational routes on the plain-HTTP listener.
@Suite struct PKIRoutesTests {
    @Test(.tags(.outsideTool), .fullRunOnly) func crlAndOCSPFollowRevocation() async throws {
        guard ExternalTool.available("openssl") else { return }
        let kg = try await TestKeygate.make()
        let service = kg.server.services.certificates
        let issued = try await service.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "sensor-1"),
            actor: "test")
        let leaf = try kg.folder.write("leaf.pem", issued.record.pem)
        let openssl = try ExternalTool.openssl
        try await openssl.run(["ocsp", "-issuer", kg.issuingPath, "-cert", leaf, "-reqout", kg.folder.file("req.der")])
        let request = try Data(contentsOf: URL(fileURLWithPath: kg.folder.file("req.der")))

        let app = Application(router: try kg.server.httpRouter())
        try await app.test(.router) { client in
            func ocsp(_ label: String, get: Bool) async throws -> String {
                let response: TestResponse
                if get {
                    let encoded = request.base64EncodedString().addingPercentEncoding(
                        withAllowedCharacters: .alphanumerics)!
                    response = try await client.execute(uri: "/pki/ocsp/" + encoded, method: .get)
                } else {
                    response = try await client.execute(
                        uri: "/pki/ocsp", method: .post, headers: [.contentType: "application/ocsp-request"],
                        body: ByteBuffer(bytes: Array(request)))
                }
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/ocsp-response")
                let path = try kg.folder.write("\(label).der", Data(response.body.readableBytesView))
                let text = try await openssl.run([
                    "ocsp", "-issuer", kg.issuingPath, "-reqin", kg.folder.file("req.der"), "-respin", path, "-CAfile",
                    kg.chainPath, "-resp_text",
                ])
                #expect(text.combined.contains("Response verify OK"), "\(text.combined)")
                return text.stdout
            }
            #expect(try await ocsp("good-get", get: true).contains("Cert Status: good"))
            #expect(try await ocsp("good-post", get: false).contains("Cert Status: good"))

            _ = try await service.revoke(serial: issued.record.serial, reason: .keyCompromise, actor: "test")
            let revoked = try await ocsp("revoked", get: false)
            #expect(revoked.contains("Cert Status: revoked") && revoked.contains("keyCompromise"))

            let crl = try await client.execute(uri: "/pki/crl", method: .get)
            #expect(crl.headers[.contentType] == "application/pkix-crl")
            let crlPath = try kg.folder.write("crl.der", Data(crl.body.readableBytesView))
            let crlText = try await openssl.run([
                "crl", "-inform", "DER", "-in", crlPath, "-noout", "-text", "-CAfile", kg.chainPath,
            ])
            #expect(crlText.combined.contains("verify OK"))
            #expect(crlText.stdout.contains(issued.record.serial.uppercased()))
            #expect(crlText.stdout.contains("Key Compromise"))

            let chain = try await client.execute(uri: "/pki/ca.pem", method: .get)
            #expect(String(buffer: chain.body).components(separatedBy: "BEGIN CERTIFICATE").count == 3)

            let garbage = try await client.execute(
                uri: "/pki/ocsp", method: .post, headers: [.contentType: "application/ocsp-request"],
                body: ByteBuffer(bytes: [1, 2, 3]))
            #expect(Array(garbage.body.readableBytesView) == OCSPResponder.unsignedResponse(.malformedRequest))
            let wrongType = try await client.execute(
                uri: "/pki/ocsp", method: .post, headers: [.contentType: "text/plain"],
                body: ByteBuffer(bytes: Array(request)))
            #expect(wrongType.status == .unsupportedMediaType)

            // The admin API is not on the plain-HTTP listener.
            let admin = try await client.execute(uri: "/admin/v1/ca", method: .get)
            #expect(admin.status == .notFound)
        }
    }

    @Test func crlIsRebuiltOncePerBurstOfRevocations() async throws {
        let kg = try await TestKeygate.make()
        let service = kg.server.services.certificates
        var serials: [String] = []
        for i in 0..<5 {
            let issued = try await service.issue(
                csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "d\(i)"),
                actor: "t")
            serials.append(issued.record.serial)
        }
        let first = try await service.crl.current()
        for serial in serials { _ = try await service.revoke(serial: serial, reason: .superseded, actor: "t") }
        let second = try await service.crl.current()
        let third = try await service.crl.current()
        #expect(second.number == first.number + 1, "five revocations, one rebuild")
        #expect(second.entryCount == 5)
        #expect(third.number == second.number, "nothing changed, nothing rebuilt")
    }

    @Test func operationalRoutes() async throws {
        let kg = try await TestKeygate.make()
        _ = try await kg.server.services.certificates.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "m"), actor: "t")
        let app = Application(router: try kg.server.httpsRouter())
        try await app.test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            for name in [
                "keygate_certificates_issued_total", "keygate_issuance_duration_seconds", "keygate_crl_age_seconds",
            ] {
                #expect(metrics.contains(name), "\(name) missing from /metrics")
            }
            #expect(metrics.contains(#"keygate_certificates_issued_total{profile="device"} 1"#))
            let spec = String(buffer: try await client.execute(uri: "/openapi.yaml", method: .get).body)
            let file = try String(contentsOfFile: packageRoot + "/docs/openapi.yaml", encoding: .utf8)
            #expect(spec == file)
            #expect(spec.contains("/admin/v1/certificates"))
        }
    }
}

@Suite struct OpenAPIDocumentTests {
    @Test(.tags(.outsideTool), .fullRunOnly) func theDocumentIsValidOpenAPI() throws {
        guard ExternalTool.available("openapi-spec-validator") else { return }
        let result = try ExternalTool.require("openapi-spec-validator").run([packageRoot + "/docs/openapi.yaml"])
        #expect(result.status == 0 && result.stdout.contains("OK"), "\(result.combined)")
    }
}

/// `/pki/*` and `/healthz` as caches and load balancers use them: HEAD, ETag, conditional GET.
@Suite struct PKICachingTests {
    @Test func headAndConditionalGetFollowTheCRL() async throws {
        let kg = try await TestKeygate.make()
        let service = kg.server.services.certificates
        let app = Application(router: try kg.server.httpRouter())
        try await app.test(.router) { client in
            let head = try await client.execute(uri: "/pki/crl", method: .head)
            #expect(head.status == .ok && head.body.readableBytes == 0)
            let etag = try #require(head.headers[.eTag])
            #expect(head.headers[.lastModified]?.hasSuffix(" GMT") == true && head.headers[.contentLength] != nil)
            let get = try await client.execute(uri: "/pki/crl", method: .get)
            #expect(get.status == .ok && get.headers[.eTag] == etag && get.body.readableBytes > 0)
            #expect(String(get.body.readableBytes) == head.headers[.contentLength])
            let same = try await client.execute(uri: "/pki/crl", method: .get, headers: [.ifNoneMatch: etag])
            #expect(same.status == .notModified && same.body.readableBytes == 0)
            let since = try #require(head.headers[.lastModified])
            let unchanged = try await client.execute(uri: "/pki/crl", method: .get, headers: [.ifModifiedSince: since])
            #expect(unchanged.status == .notModified)

            // A revocation makes a new CRL: the old tag no longer matches.
            let issued = try await service.issue(
                csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "c-1"),
                actor: "test")
            _ = try await service.revoke(serial: issued.record.serial, reason: .keyCompromise, actor: "test")
            let changed = try await client.execute(uri: "/pki/crl", method: .get, headers: [.ifNoneMatch: etag])
            #expect(changed.status == .ok && changed.headers[.eTag] != etag)

            let chainHead = try await client.execute(uri: "/pki/ca.pem", method: .head)
            #expect(chainHead.status == .ok && chainHead.headers[.eTag] != nil)
            let chainAgain = try await client.execute(
                uri: "/pki/ca.pem", method: .get, headers: [.ifNoneMatch: chainHead.headers[.eTag] ?? ""])
            #expect(chainAgain.status == .notModified)
            let health = try await client.execute(uri: "/healthz", method: .head)
            #expect(health.status == .ok)
        }
    }
}

/// Answers signed on the spot (requests with a nonce) are budgeted per client: past the budget a
/// client gets the answer signed ahead, without its nonce; another client is not affected.
@Suite(.tags(.outsideTool), .fullRunOnly) struct OCSPBudgetTests {
    @Test func nonceRequestsPastTheBudgetGetTheKeptAnswer() async throws {
        guard ExternalTool.available("openssl") else { return }
        let kg = try await TestKeygate.make()
        let service = kg.server.services.certificates
        let issued = try await service.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "n-1"),
            actor: "test")
        let leaf = try kg.folder.write("leaf.pem", issued.record.pem)
        try await ExternalTool.openssl.run([
            "ocsp", "-issuer", kg.issuingPath, "-cert", leaf, "-reqout", kg.folder.file("nonce.der"),
        ])
        let request = Array(try Data(contentsOf: URL(fileURLWithPath: kg.folder.file("nonce.der"))))
        let nonce = try #require(try OCSPRequest(derBytes: request).nonceExtensionValue)
        func echoes(_ answer: [UInt8]) -> Bool {
            answer.count > nonce.count
                && (0...(answer.count - nonce.count)).contains { Array(answer[$0..<($0 + nonce.count)]) == nonce }
        }
        let now = Date()
        var echoed = 0
        var kept = 0
        for _ in 0..<60 {
            let answer = await service.answerOCSP(request, client: "203.0.113.5", now: now)
            #expect(answer.count > 100, "a signed answer every time")
            if echoes(answer) { echoed += 1 } else { kept += 1 }
        }
        #expect(echoed == 20, "the burst is signed on the spot: \(echoed)")
        #expect(kept == 40, "the rest get the kept answer: \(kept)")
        #expect(service.metrics.render().contains("keygate_ocsp_over_budget_total 40"))
        // Another client still gets its nonce.
        #expect(echoes(await service.answerOCSP(request, client: "198.51.100.9", now: now)))
        // The kept answer is a valid, signed "good" for the certificate.
        let last = await service.answerOCSP(request, client: "203.0.113.5", now: now)
        let file = try kg.folder.write("kept.der", Data(last))
        let checked = try await ExternalTool.openssl.run([
            "ocsp", "-respin", file, "-issuer", kg.issuingPath, "-cert", leaf, "-CAfile", kg.chainPath, "-no_nonce",
        ])
        #expect(checked.combined.contains("Response verify OK") && checked.stdout.contains(": good"), "\(checked.combined)")
    }
}

/// `/metrics` is open by default and behind any admin token when the configuration says so.
@Suite struct MetricsAccessTests {
    @Test func metricsCanRequireAToken() async throws {
        let kg = try await TestKeygate.make()
        let open = Application(router: try kg.server.httpRouter())
        try await open.test(.router) { client in
            let answer = try await client.execute(uri: "/metrics", method: .get)
            #expect(answer.status == .ok)
        }
        let viewer = "kg_" + String(repeating: "v", count: 43)
        try await kg.store.addAdminToken(
            AdminToken(name: "monitoring", hash: AdminTokenSecret.hash(viewer), role: .readOnly),
            audit: .init(actor: "test", action: "token.created", subject: "monitoring"))
        let guarded = Application(router: try kg.server.with { $0.metricsRequireToken = true }.httpRouter())
        try await guarded.test(.router) { client in
            let refused = try await client.execute(uri: "/metrics", method: .get)
            #expect(refused.status == .unauthorized)
            let read = try await client.execute(
                uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(viewer)"])
            #expect(read.status == .ok && String(buffer: read.body).contains("keygate_"))
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok, "health stays open")
        }
    }
}

extension MetricsAccessTests {
    @Test func metricsCanHaveAListenerOfTheirOwn() async throws {
        let kg = try await TestKeygate.make()
        let server = kg.server.with { $0.metricsListen = "127.0.0.1:0" }
        let running = try await BackgroundServer.start(server.run)
        defer { Task { await running.stop() } }
        let metricsPort = try #require(running.ready.metrics)
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        func get(_ url: String) async throws -> (HTTPResponseStatus, String) {
            let response = try await http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            return (response.status, String(buffer: try await response.body.collect(upTo: 1 << 22)))
        }
        let (status, body) = try await get("http://127.0.0.1:\(metricsPort)/metrics")
        #expect(status == .ok && body.contains("keygate_"))
        #expect(try await get("http://127.0.0.1:\(metricsPort)/healthz").0 == .ok)
        #expect(try await get("http://127.0.0.1:\(metricsPort)/pki/crl").0 == .notFound, "only metrics and health")
        // The public listeners no longer answer /metrics.
        #expect(try await get("http://127.0.0.1:\(running.ready.http)/metrics").0 == .notFound)
        #expect(try await get("http://127.0.0.1:\(running.ready.http)/healthz").0 == .ok)
    }

    @Test func aBadMetricsAddressIsRefused() async throws {
        let kg = try await TestKeygate.make()
        let server = kg.server.with { $0.metricsListen = "localhost" }
        await #expect(throws: KeygateError.self) { try await server.run() }
    }
}

/// What the HTTPS listener offers, as openssl sees it: TLS 1.2 with AEAD suites only, no SHA-1 in the
/// client-certificate request.
@Suite(.tags(.outsideTool), .fullRunOnly) struct TLSListenerTests {
    @Test func onlyAEADSuitesAndNoSHA1ClientSignatures() async throws {
        guard ExternalTool.available("openssl") else { return }
        let kg = try await TestKeygate.make()
        let server = try await kg.start()
        defer { Task { await server.stop() } }
        let target = "127.0.0.1:\(server.ports.https)"
        func handshake(_ extra: [String]) async throws -> ExternalTool.Output {
            try await ExternalTool.openssl.run(
                ["s_client", "-connect", target, "-CAfile", kg.rootPath] + extra, input: Data(), timeout: 20)
        }
        let cbc = try await handshake(["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:AES128-SHA"])
        #expect(cbc.status != 0, "a CBC-SHA1 suite is refused: \(cbc.combined.suffix(400))")
        let aead = try await handshake(["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"])
        #expect(aead.status == 0 && aead.stdout.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "\(aead.combined.suffix(600))")
        let requested = aead.stdout.split(separator: "\n").first { $0.hasPrefix("Requested Signature Algorithms") }
        #expect(requested != nil, "the server asks for a client certificate: \(aead.stdout.prefix(1500))")
        #expect(requested.map { !$0.contains("SHA1") } == true, "\(requested ?? "")")
    }
}
