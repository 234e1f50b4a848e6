import Crypto
import CryptoExtras
import Foundation
import Hummingbird
import HummingbirdTesting
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import NIOCore
import SwiftASN1
import Testing
import X509

/// The admin API through Hummingbird's router test client.
@Suite struct AdminAPITests {
    static let adminRoutes: [(HTTPRequest.Method, String)] = [
        (.get, "/admin/v1/ca"),
        (.post, "/admin/v1/certificates"),
        (.get, "/admin/v1/certificates"),
        (.get, "/admin/v1/certificates/0102"),
        (.post, "/admin/v1/certificates/0102/revoke"),
        (.get, "/admin/v1/audit"),
        (.get, "/admin/v1/audit/verify"),
        (.post, "/admin/v1/audit/checkpoint"),
    ]

    func withApp(_ test: @escaping @Sendable (any TestClientProtocol, TestKeygate) async throws -> Void) async throws {
        let kg = try await TestKeygate.make()
        let app = Application(router: try kg.server.httpsRouter())
        try await app.test(.router) { client in try await test(client, kg) }
    }

    @Test func everyAdminRouteNeedsAValidToken() async throws {
        try await withApp { client, kg in
            let wrong = ["", "Bearer", "Bearer kg_wrong", "Basic YWRtaW46YWRtaW4=", "Bearer \(kg.adminToken)x"]
            for (method, path) in Self.adminRoutes {
                for header in wrong {
                    var headers: HTTPFields = [.contentType: "application/json"]
                    if !header.isEmpty { headers[.authorization] = header }
                    try await client.execute(
                        uri: path, method: method, headers: headers, body: ByteBuffer(string: "{}")
                    ) {
                        response in
                        #expect(response.status == .unauthorized, "\(method) \(path) with '\(header)'")
                        let errorCode = try response.errorCode
                        #expect(errorCode == "unauthorized")
                        #expect(response.headers[.wwwAuthenticate] != nil)
                    }
                }
            }
        }
    }

    @Test func issuingThroughTheAPIRecordsTheCertificate() async throws {
        try await withApp { client, kg in
            let csr = try TestCSR.make()
            let issued = try await client.issue(kg, csr: csr.pem, commonName: "sensor-42")
            #expect(issued.status == .created)
            let body = try issued.json(CertificateBody.self)
            #expect(body.subject == "CN=sensor-42")
            #expect(body.chain?.components(separatedBy: "BEGIN CERTIFICATE").count == 4)
            let stored = try await kg.server.store.certificate(serial: body.serial)
            #expect(stored?.pem == body.certificate)
            let events = try await kg.server.store.auditEvents(subject: body.serial, since: nil, limit: 10)
            #expect(events.map(\.action) == ["certificate.issued"])
            #expect(events.first?.actor == "admin:initial")

            try await client.execute(uri: "/admin/v1/certificates/\(body.serial)", method: .get, headers: kg.auth) {
                response in
                let fetched = try response.json(CertificateBody.self)
                #expect(fetched.serial == body.serial)
            }
            try await client.execute(uri: "/admin/v1/certificates?status=active", method: .get, headers: kg.auth) {
                response in
                let list = try response.json(CertificateListBody.self)
                #expect(list.certificates.contains(where: { $0.serial == body.serial }))
            }
        }
    }

    /// Bad input gets a 4xx with a stable code and leaves no certificate behind.
    @Test func malformedInputIsRefusedWithoutSideEffects() async throws {
        let good = try TestCSR.make()
        var badSignature = good.der
        badSignature[badSignature.count - 3] ^= 0x01
        let rsa1024 = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024))
        let weak = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("weak") }, privateKey: .init(rsa1024),
            attributes: .init())
        let p521 = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("curve") },
            privateKey: .init(P521.Signing.PrivateKey()),
            attributes: .init())
        func pem(_ der: [UInt8], label: String = "CERTIFICATE REQUEST") -> String {
            "-----BEGIN \(label)-----\n"
                + Data(der).base64EncodedString(options: .lineLength64Characters).replacingOccurrences(
                    of: "\r\n", with: "\n") + "\n-----END \(label)-----\n"
        }
        func body(_ csr: String, extra: String = "") -> String {
            let escaped = csr.replacingOccurrences(of: "\n", with: "\\n")
            return #"{"csr":"\#(escaped)","subject":{"commonName":"x"}\#(extra)}"#
        }
        let random = (0..<400).map { _ in UInt8.random(in: 0...255) }
        let cases: [(String, String, HTTPResponse.Status, String)] = [
            ("random bytes", body(pem(random)), .badRequest, "malformedCSR"),
            ("truncated DER", body(pem(Array(good.der.prefix(100)))), .badRequest, "malformedCSR"),
            ("wrong PEM label", body(pem(good.der, label: "CERTIFICATE")), .badRequest, "malformedPEM"),
            ("signature mismatch", body(pem(badSignature)), .badRequest, "csrSignatureInvalid"),
            ("RSA-1024", body(try weak.serializeAsPEM().pemString), .badRequest, "keyTooWeak"),
            ("unsupported curve", body(try p521.serializeAsPEM().pemString), .badRequest, "unsupportedKey"),
            ("bad JSON", "{\"csr\": ", .badRequest, "malformedJSON"),
            ("not JSON", "csr=abc", .badRequest, "malformedJSON"),
            ("wrong type", #"{"csr": 12}"#, .badRequest, "malformedJSON"),
            ("no subject", #"{"csr":"x"}"#, .badRequest, "invalidSubject"),
            ("unknown profile", body(good.pem, extra: #","profile":"golden""#), .badRequest, "unknownProfile"),
            ("bad validity", body(good.pem, extra: #","validityDays":0"#), .badRequest, "malformedInput"),
            (
                "bad common name",
                body(good.pem).replacingOccurrences(of: #""commonName":"x""#, with: #""commonName":"""#), .badRequest,
                "invalidSubject"
            ),
            ("10 MB body", String(repeating: "a", count: 10 << 20), .contentTooLarge, "bodyTooLarge"),
        ]
        try await withApp { client, kg in
            let before = try await kg.server.store.certificateCounts().values.reduce(0, +)
            let auditBefore = try await kg.server.store.auditEvents(subject: nil, since: nil, limit: 1000).count
            for (name, text, status, code) in cases {
                try await client.execute(
                    uri: "/admin/v1/certificates", method: .post, headers: kg.auth, body: ByteBuffer(string: text)
                ) { response in
                    #expect(response.status == status, "\(name)")
                    let errorCode = try response.errorCode
                    #expect(errorCode == code, "\(name)")
                }
            }
            let after = try await kg.server.store.certificateCounts().values.reduce(0, +)
            #expect(after == before, "no certificate row may be left behind")
            let auditAfter = try await kg.server.store.auditEvents(subject: nil, since: nil, limit: 1000).count
            #expect(auditAfter == auditBefore)
        }
    }

    /// Tokens have roles, expire and can be revoked; each change is audited.
    @Test func tokensHaveRolesExpiryAndRevocation() async throws {
        try await withApp { client, kg in
            func create(_ name: String, role: String, expires: Int? = nil) async throws -> String {
                var body = #"{"name":"\#(name)","role":"\#(role)""#
                if let expires { body += #","expiresInSeconds":\#(expires)"# }
                body += "}"
                let response = try await client.execute(
                    uri: "/admin/v1/tokens", method: .post, headers: kg.auth, body: ByteBuffer(string: body))
                #expect(response.status == .created, "\(String(buffer: response.body))")
                return try response.json(TokenBody.self).token ?? ""
            }
            func call(_ token: String, _ method: HTTPRequest.Method, _ path: String, _ body: String = "{}") async throws
                -> (HTTPResponse.Status, String)
            {
                let response = try await client.execute(
                    uri: path, method: method,
                    headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                    body: ByteBuffer(string: body))
                let code = (try? response.errorCode) ?? ""
                return (response.status, code)
            }
            let viewer = try await create("viewer", role: "read-only", expires: 3600)
            #expect(try await call(viewer, .get, "/admin/v1/ca").0 == .ok)
            #expect(try await call(viewer, .get, "/admin/v1/devices").0 == .ok)
            let refused = try await call(viewer, .post, "/admin/v1/groups", #"{"name":"g1"}"#)
            #expect(refused.0 == .forbidden && refused.1 == "roleForbidden")

            let ops = try await create("ops", role: "operator")
            #expect(try await call(ops, .post, "/admin/v1/groups", #"{"name":"g2","attestationMethods":["ddk"]}"#).0 == .created)
            #expect(try await call(ops, .post, "/admin/v1/connectors", #"{"name":"c","type":"dps"}"#).1 == "roleForbidden")
            #expect(try await call(ops, .post, "/admin/v1/tokens", #"{"name":"more"}"#).1 == "roleForbidden")
            #expect(try await call(ops, .get, "/admin/v1/tokens").1 == "roleForbidden", "operators do not see tokens")

            // A second usable token with the same name is refused.
            let duplicate = try await client.execute(
                uri: "/admin/v1/tokens", method: .post, headers: kg.auth,
                body: ByteBuffer(string: #"{"name":"ops","role":"admin"}"#))
            #expect(duplicate.status == .conflict)

            // Revoked: refused at once.
            try await client.execute(uri: "/admin/v1/tokens/ops", method: .delete, headers: kg.auth) {
                #expect($0.status == .noContent)
            }
            let revoked = try await call(ops, .get, "/admin/v1/ca")
            #expect(revoked.0 == .unauthorized && revoked.1 == "tokenExpired")
            // Expired: refused.
            let old = "kg_" + String(repeating: "a", count: 43)
            try await kg.store.addAdminToken(
                AdminToken(name: "old", hash: AdminTokenSecret.hash(old), createdAt: Date() - 7200, expiresAt: Date() - 60),
                audit: .init(actor: "test", action: "token.created", subject: "old"))
            #expect(try await call(old, .get, "/admin/v1/ca").1 == "tokenExpired")

            let listed = try await client.execute(uri: "/admin/v1/tokens", method: .get, headers: kg.auth)
            let text = String(buffer: listed.body)
            #expect(text.contains("viewer") && text.contains("read-only") && !text.contains(viewer), "never the text")
            let events = try await kg.store.auditEvents(subject: nil, since: nil, limit: 200).map(\.action)
            #expect(events.filter { $0 == "token.created" }.count >= 2 && events.contains("token.revoked"))
        }
    }

    /// JSON routes take JSON only: a form post or plain text is 415 and changes nothing.
    @Test func jsonRoutesRefuseOtherContentTypes() async throws {
        try await withApp { client, kg in
            for type in ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"] {
                var headers = kg.auth
                headers[.contentType] = type
                try await client.execute(
                    uri: "/admin/v1/groups", method: .post, headers: headers,
                    body: ByteBuffer(string: #"{"name":"sneaky","attestationMethods":["ddk"]}"#)
                ) { response in
                    #expect(response.status == .unsupportedMediaType, "\(type)")
                    let code = try response.errorCode
                    #expect(code == "unsupportedMediaType", "\(type)")
                }
                try await client.execute(
                    uri: "/device/v1/challenge", method: .post, headers: [.contentType: type],
                    body: ByteBuffer(string: #"{"deviceId":"dev-1"}"#)
                ) { response in
                    #expect(response.status == .unsupportedMediaType, "\(type)")
                }
            }
            #expect(try await kg.server.store.group(named: "sneaky") == nil)
            var headers = kg.auth
            headers[.contentType] = "application/json; charset=utf-8"
            try await client.execute(
                uri: "/admin/v1/groups", method: .post, headers: headers,
                body: ByteBuffer(string: #"{"name":"plain","attestationMethods":["ddk"]}"#)
            ) { response in
                #expect(response.status == .created)
            }
        }
    }

    @Test func revocationErrorsHaveStableCodes() async throws {
        try await withApp { client, kg in
            let issued = try await client.issue(kg, csr: try TestCSR.make().pem, commonName: "d1").json(
                CertificateBody.self)
            let cases: [(String, String, HTTPResponse.Status, String)] = [
                ("0a0b0c", #"{"reason":"keyCompromise"}"#, .notFound, "certificateNotFound"),
                ("not-hex", #"{"reason":"keyCompromise"}"#, .badRequest, "malformedInput"),
                (issued.serial, #"{"reason":"because"}"#, .badRequest, "unknownRevocationReason"),
                (issued.serial, #"{"reason":"cACompromise"}"#, .badRequest, "unknownRevocationReason"),
                (issued.serial, #"{"reason":"keyCompromise"}"#, .ok, ""),
                (issued.serial, #"{"reason":"keyCompromise"}"#, .conflict, "alreadyRevoked"),
            ]
            for (serial, json, status, code) in cases {
                try await client.execute(
                    uri: "/admin/v1/certificates/\(serial)/revoke", method: .post, headers: kg.auth,
                    body: ByteBuffer(string: json)
                ) { response in
                    #expect(response.status == status, "\(serial) \(json)")
                    if !code.isEmpty {
                        let errorCode = try response.errorCode
                        #expect(errorCode == code)
                    }
                }
            }
            try await client.execute(uri: "/admin/v1/certificates/ffff", method: .get, headers: kg.auth) { response in
                #expect(response.status == .notFound)
                let errorCode = try response.errorCode
                #expect(errorCode == "certificateNotFound")
            }
        }
    }

    @Test func caInfoAndAuditAreServed() async throws {
        try await withApp { client, kg in
            try await client.execute(uri: "/admin/v1/ca", method: .get, headers: kg.auth) { response in
                let info = try response.json(CAInfoBody.self)
                #expect(info.issuing.subject == "CN=Keygate Issuing CA,O=Keygate")
                #expect(info.issuing.keyStore == "software")
                #expect(info.root.keyAlgorithm == "ecdsa-p256")
            }
            try await client.execute(uri: "/admin/v1/audit/verify", method: .get, headers: kg.auth) { response in
                let verified = try response.json(AuditVerifyBody.self)
                #expect(verified.intact)
            }
            for query in [
                "/admin/v1/audit?limit=abc", "/admin/v1/audit?since=infd",
                "/admin/v1/certificates?expiringWithin=1e300d",
            ] {
                try await client.execute(uri: query, method: .get, headers: kg.auth) { response in
                    #expect(response.status == .badRequest, "\(query)")
                }
            }
            try await client.execute(uri: "/admin/v1/nothing", method: .get, headers: kg.auth) { response in
                #expect(response.status == .notFound)
                let errorCode = try response.errorCode
                #expect(errorCode == "routeNotFound")
            }
        }
    }
}

extension TestKeygate {
    var auth: HTTPFields { [.authorization: "Bearer \(adminToken)", .contentType: "application/json"] }
}

extension TestClientProtocol {
    func issue(_ kg: TestKeygate, csr: String, commonName: String, profile: String = "device") async throws
        -> TestResponse
    {
        let body = IssueBody(csr: csr, profile: profile, subject: .init(commonName: commonName))
        return try await execute(
            uri: "/admin/v1/certificates", method: .post, headers: kg.auth,
            body: ByteBuffer(bytes: try JSONEncoder().encode(body)))
    }
}

extension TestResponse {
    func json<T: Decodable>(_ type: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(T.self, from: Data(body.readableBytesView))
    }

    var errorCode: String {
        get throws {
            struct E: Decodable { var code: String; var message: String }
            return try json(E.self).code
        }
    }
}
