import AsyncHTTPClient
import Crypto
import Foundation
import KeygatePKI
import KeygateSandbox
import KeygateTestSupport
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing

/// The sandbox's AAD and Key Vault, driven the way Keygate's Key Vault signer will drive real Azure.
@Suite struct KeyVaultTests {
    struct Running {
        let connection: SandboxServer.Connection
        let sandbox: TestSandbox
        let http: HTTPClient
        let folder: TemporaryDirectory

        static func start(in existing: TemporaryDirectory? = nil) async throws -> Running {
            let folder = try existing ?? TemporaryDirectory("sandbox")
            let sandbox = try await TestSandbox.start(in: folder)
            let connection = sandbox.connection
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(connection.caCertificate)
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
            return Running(connection: connection, sandbox: sandbox, http: http, folder: folder)
        }

        func stop() async {
            try? await http.shutdown()
            await sandbox.stop()
        }

        func call(
            _ method: HTTPMethod, _ url: String, json: [String: Any]? = nil, form: String? = nil, token: String? = nil
        )
            async throws -> (Int, [String: Any])
        {
            var request = HTTPClientRequest(url: url)
            request.method = method
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let json {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
            }
            if let form {
                request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
                request.body = .bytes(ByteBuffer(string: form))
            }
            let response = try await http.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            let object =
                (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            return (Int(response.status.code), object)
        }

        func token(secret: String? = nil) async throws -> (Int, [String: Any]) {
            let kv = connection.keyVault
            let form = [
                "client_id=\(kv.clientId)", "client_secret=\(secret ?? kv.clientSecret)",
                "grant_type=client_credentials",
                "scope=\(kv.scope.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)",
            ].joined(separator: "&")
            return try await call(.POST, kv.tokenEndpoint, form: form)
        }
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func tokenKeyCreationAndAnES256SignatureOpenSSLVerifies() async throws {
        let sandbox = try await Running.start()
        defer { Task { await sandbox.stop() } }
        let kv = sandbox.connection.keyVault

        let (status, token) = try await sandbox.token()
        #expect(status == 200 && token["token_type"] as? String == "Bearer" && token["expires_in"] as? Int == 3599)
        let bearer = try #require(token["access_token"] as? String)

        let (createStatus, bundle) = try await sandbox.call(
            .POST, kv.vaultURL + "/keys/issuing-ca/create?api-version=7.4",
            json: ["kty": "EC-HSM", "crv": "P-256", "key_ops": ["sign", "verify"]], token: bearer)
        #expect(createStatus == 200)
        let key = try #require(bundle["key"] as? [String: Any])
        let kid = try #require(key["kid"] as? String)
        #expect(kid.hasPrefix(kv.vaultURL + "/keys/issuing-ca/"))
        let x = try #require(Base64URL.decode(key["x"] as? String ?? ""))
        let y = try #require(Base64URL.decode(key["y"] as? String ?? ""))
        let publicKey = try P256.Signing.PublicKey(rawRepresentation: x + y)

        let message = Array("to be signed by the vault".utf8)
        let digest = Array(SHA256.hash(data: message))
        let (signStatus, signed) = try await sandbox.call(
            .POST, kid + "/sign?api-version=7.4", json: ["alg": "ES256", "value": Base64URL.encode(digest)],
            token: bearer)
        #expect(signStatus == 200)
        let raw = try #require(Base64URL.decode(signed["value"] as? String ?? ""))
        #expect(raw.count == 64, "Key Vault returns raw r‖s")
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: raw)
        #expect(publicKey.isValidSignature(signature, for: message))

        let (verifyStatus, verified) = try await sandbox.call(
            .POST, kid + "/verify?api-version=7.4",
            json: ["alg": "ES256", "digest": Base64URL.encode(digest), "value": Base64URL.encode(raw)],
            token: bearer)
        #expect(verifyStatus == 200 && verified["value"] as? Bool == true)

        guard ExternalTool.available("openssl") else { return }
        let dir = sandbox.folder
        try dir.write("pub.pem", publicKey.pemRepresentation)
        try dir.write("message", Data(message))
        try dir.write("sig.der", Data(signature.derRepresentation))
        let check = try await ExternalTool.openssl.run([
            "dgst", "-sha256", "-verify", dir.file("pub.pem"), "-signature", dir.file("sig.der"), dir.file("message"),
        ])
        #expect(check.status == 0 && check.stdout.contains("Verified OK"), "\(check.combined)")
    }

    @Test func keysAndCredentialsSurviveARestart() async throws {
        let first = try await Running.start()
        let bearer = try #require(try await first.token().1["access_token"] as? String)
        let (_, bundle) = try await first.call(
            .POST, first.connection.keyVault.vaultURL + "/keys/root/create?api-version=7.4", json: ["kty": "EC-HSM"],
            token: bearer)
        let kid = try #require((bundle["key"] as? [String: Any])?["kid"] as? String)
        let secret = first.connection.keyVault.clientSecret
        await first.stop()

        let second = try await Running.start(in: first.folder)
        defer { Task { await second.stop() } }
        #expect(second.connection.keyVault.clientSecret == secret)
        let again = try #require(try await second.token().1["access_token"] as? String)
        let version = kid.split(separator: "/").last.map(String.init) ?? ""
        let (status, fetched) = try await second.call(
            .GET, second.connection.keyVault.vaultURL + "/keys/root/\(version)?api-version=7.4", token: again)
        #expect(status == 200)
        #expect(((fetched["key"] as? [String: Any])?["kid"] as? String)?.hasSuffix("/keys/root/\(version)") == true)
    }

    @Test func credentialsAndBearerTokensAreChecked() async throws {
        let sandbox = try await Running.start()
        defer { Task { await sandbox.stop() } }
        let kv = sandbox.connection.keyVault
        let (badSecret, aadError) = try await sandbox.token(secret: "wrong")
        #expect(badSecret == 401 && aadError["error"] as? String == "invalid_client")
        let url = kv.vaultURL + "/keys/k/create?api-version=7.4"
        for token in [nil, "forged.token", "a"] as [String?] {
            let (status, body) = try await sandbox.call(.POST, url, json: ["kty": "EC"], token: token)
            #expect(status == 401)
            #expect((body["error"] as? [String: Any])?["code"] as? String == "Unauthorized")
        }
        let bearer = try #require(try await sandbox.token().1["access_token"] as? String)
        let (missing, error) = try await sandbox.call(
            .GET, kv.vaultURL + "/keys/nothing?api-version=7.4", token: bearer)
        #expect(missing == 404 && (error["error"] as? [String: Any])?["code"] as? String == "KeyNotFound")
        let (noVersion, _) = try await sandbox.call(.GET, kv.vaultURL + "/keys/nothing", token: bearer)
        #expect(noVersion == 400)
    }
}
