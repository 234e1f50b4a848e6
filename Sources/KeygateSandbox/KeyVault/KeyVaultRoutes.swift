import Crypto
import Foundation
import Hummingbird
import KeygatePKI
import NIOCore

/// AAD's client-credentials token endpoint and Key Vault's key operations (create EC P-256, get,
/// sign ES256 over a caller-computed digest returning raw `r‖s`, verify), with Key Vault's error bodies.
struct KeyVaultRoutes {
    let store: SandboxStore
    let tokens: AADTokens
    let baseURLProvider: PortBox
    var baseURL: String { baseURLProvider.baseURL }

    static let scope = "https://vault.azure.net/.default"
    var vaultURL: String { baseURL + "/keyvault" }

    func register(on router: Router<SandboxContext>) {
        router.post("aad/:tenant/oauth2/v2.0/token") { request, context in
            try await token(request, tenant: try context.parameters.require("tenant"))
        }
        let vault = router.group("keyvault")
        vault.post("keys/:name/create") { request, context in
            try await authorized(request) { try await create(request, name: try context.parameters.require("name")) }
        }
        vault.get("keys/:name") { request, context in
            try await authorized(request) { try await get(name: try context.parameters.require("name"), version: nil) }
        }
        vault.get("keys/:name/:version") { request, context in
            try await authorized(request) {
                try await get(
                    name: try context.parameters.require("name"), version: try context.parameters.require("version"))
            }
        }
        vault.post("keys/:name/:version/sign") { request, context in
            try await authorized(request) {
                try await sign(
                    request, name: try context.parameters.require("name"),
                    version: try context.parameters.require("version"))
            }
        }
        vault.post("keys/:name/:version/verify") { request, context in
            try await authorized(request) {
                try await verify(
                    request, name: try context.parameters.require("name"),
                    version: try context.parameters.require("version"))
            }
        }
    }

    // MARK: AAD

    private func token(_ request: Request, tenant: String) async throws -> Response {
        let state = await store.state
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        let form = Self.parseForm(String(buffer: buffer))
        guard tenant == state.tenantID else {
            return Self.aadError(400, "invalid_tenant", "Tenant '\(tenant)' not found.")
        }
        guard form["grant_type"] == "client_credentials" else {
            return Self.aadError(400, "unsupported_grant_type", "The grant type must be client_credentials.")
        }
        guard form["client_id"] == state.clientID, let secret = form["client_secret"],
            Array(secret.utf8).count == Array(state.clientSecret.utf8).count,
            HMAC<SHA256>.authenticationCode(for: Array(secret.utf8), using: tokens.key)
                == HMAC<SHA256>.authenticationCode(for: Array(state.clientSecret.utf8), using: tokens.key)
        else {
            return Self.aadError(401, "invalid_client", "Invalid client secret provided.")
        }
        guard let scope = form["scope"], scope == Self.scope || scope == CentralRoutes.scope else {
            return Self.aadError(400, "invalid_scope", "The scope must be \(Self.scope) or \(CentralRoutes.scope).")
        }
        let token = try tokens.issue(clientID: state.clientID, scope: scope)
        return try Self.json(
            [
                "token_type": "Bearer", "expires_in": Int(AADTokens.lifetime),
                "ext_expires_in": Int(AADTokens.lifetime),
                "access_token": token,
            ] as [String: Any])
    }

    static func parseForm(_ text: String) -> [String: String] {
        var form: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            if parts.count == 2 { form[parts[0]] = parts[1] }
        }
        return form
    }

    // MARK: Key Vault

    private func authorized(_ request: Request, _ body: () async throws -> Response) async throws -> Response {
        guard request.uri.queryParameters.get("api-version") != nil else {
            return Self.vaultError(400, "BadParameter", "The 'api-version' query parameter is missing.")
        }
        let state = await store.state
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            tokens.verify(String(header.dropFirst(7)), scope: Self.scope) != nil
        else {
            var response = Self.vaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
            response.headers[.wwwAuthenticate] =
                "Bearer authorization=\"\(baseURL)/aad/\(state.tenantID)\", resource=\"https://vault.azure.net\""
            return response
        }
        return try await body()
    }

    private func create(_ request: Request, name: String) async throws -> Response {
        struct Create: Decodable {
            var kty: String
            var crv: String?
            var key_ops: [String]?
        }
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        guard let body = try? JSONDecoder().decode(Create.self, from: Data(buffer.readableBytesView)) else {
            return Self.vaultError(400, "BadParameter", "The request body is not a valid key creation request.")
        }
        guard body.kty == "EC" || body.kty == "EC-HSM", body.crv ?? "P-256" == "P-256" else {
            return Self.vaultError(400, "BadParameter", "The sandbox creates EC P-256 keys (kty EC or EC-HSM).")
        }
        guard name.count <= 127, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            return Self.vaultError(400, "BadParameter", "Key names are 1-127 letters, digits and dashes.")
        }
        let key = P256.Signing.PrivateKey()
        let version = Hex.encode(SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) })
        let entry = SandboxState.VaultKey(
            name: name, version: version, privateKey: key.rawRepresentation.base64EncodedString(), createdAt: Date())
        try await store.update { $0.vaultKeys.append(entry) }
        return try Self.json(bundle(entry, kty: body.kty))
    }

    private func find(name: String, version: String?) async -> SandboxState.VaultKey? {
        let keys = await store.state.vaultKeys.filter { $0.name == name }
        guard let version, !version.isEmpty else { return keys.last }
        return keys.first { $0.version == version }
    }

    private func get(name: String, version: String?) async throws -> Response {
        guard let entry = await find(name: name, version: version) else {
            return Self.vaultError(404, "KeyNotFound", "A key with (name/id) \(name) was not found in this key vault.")
        }
        return try Self.json(bundle(entry, kty: "EC-HSM"))
    }

    private func sign(_ request: Request, name: String, version: String) async throws -> Response {
        struct Sign: Decodable {
            var alg: String
            var value: String
        }
        guard let entry = await find(name: name, version: version),
            let key = try? P256.Signing.PrivateKey(rawRepresentation: Data(base64Encoded: entry.privateKey) ?? Data())
        else {
            return Self.vaultError(
                404, "KeyNotFound", "A key with (name/id) \(name)/\(version) was not found in this key vault.")
        }
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        guard let body = try? JSONDecoder().decode(Sign.self, from: Data(buffer.readableBytesView)),
            body.alg == "ES256", let digest = Base64URL.decode(body.value), digest.count == 32
        else {
            return Self.vaultError(400, "BadParameter", "Sign takes alg ES256 and a base64url SHA-256 digest in value.")
        }
        let signature = try key.signature(for: PrecomputedDigest(bytes: digest))
        return try Self.json(["kid": kid(entry), "value": Base64URL.encode(Array(signature.rawRepresentation))])
    }

    private func verify(_ request: Request, name: String, version: String) async throws -> Response {
        struct Verify: Decodable {
            var alg: String
            var digest: String
            var value: String
        }
        guard let entry = await find(name: name, version: version),
            let key = try? P256.Signing.PrivateKey(rawRepresentation: Data(base64Encoded: entry.privateKey) ?? Data())
        else {
            return Self.vaultError(
                404, "KeyNotFound", "A key with (name/id) \(name)/\(version) was not found in this key vault.")
        }
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        guard let body = try? JSONDecoder().decode(Verify.self, from: Data(buffer.readableBytesView)),
            body.alg == "ES256", let digest = Base64URL.decode(body.digest),
            let raw = Base64URL.decode(body.value)
        else {
            return Self.vaultError(400, "BadParameter", "Verify takes alg, digest and value.")
        }
        let valid =
            (try? P256.Signing.ECDSASignature(rawRepresentation: raw)).map {
                key.publicKey.isValidSignature($0, for: PrecomputedDigest(bytes: digest))
            } ?? false
        return try Self.json(["value": valid])
    }

    private func kid(_ entry: SandboxState.VaultKey) -> String {
        "\(vaultURL)/keys/\(entry.name)/\(entry.version)"
    }

    private func bundle(_ entry: SandboxState.VaultKey, kty: String) -> [String: Any] {
        let key = try? P256.Signing.PrivateKey(rawRepresentation: Data(base64Encoded: entry.privateKey) ?? Data())
        let raw = Array(key?.publicKey.rawRepresentation ?? Data())
        let created = Int(entry.createdAt.timeIntervalSince1970)
        return [
            "key": [
                "kid": kid(entry), "kty": kty, "crv": "P-256", "key_ops": ["sign", "verify"],
                "x": Base64URL.encode(Array(raw.prefix(32))), "y": Base64URL.encode(Array(raw.suffix(32))),
            ] as [String: Any],
            "attributes": ["enabled": true, "created": created, "updated": created, "recoveryLevel": "Purgeable"]
                as [String: Any],
        ]
    }

    // MARK: Bodies

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        try SandboxHTTP.json(object, status: status)
    }

    static func vaultError(_ status: Int, _ code: String, _ message: String) -> Response {
        SandboxHTTP.error(.keyVault, status: status, code: code, message: message)
    }

    static func aadError(_ status: Int, _ error: String, _ description: String) -> Response {
        SandboxHTTP.error(.aad, status: status, code: error, message: description)
    }
}
