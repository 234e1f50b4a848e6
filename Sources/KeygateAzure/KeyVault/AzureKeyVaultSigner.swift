public import AsyncHTTPClient
import Crypto
import Foundation
public import KeygatePKI
import NIOCore
import NIOHTTP1
public import X509

/// A CA key that lives in Azure Key Vault (`EC-HSM`, P-256): Keygate sends SHA-256 digests to
/// `{kid}/sign` (ES256) and turns the raw `r‖s` answer into the DER an X.509 signature needs.
public struct AzureKeyVaultSigner: CertificateSigner {
    /// The Key Vault API version Keygate sends.
    public static let apiVersion = "7.4"
    /// The AAD scope of Key Vault, for client-credentials tokens.
    public static let scope = "https://vault.azure.net/.default"

    /// The key's full identifier, `{vault}/keys/{name}/{version}`.
    public let keyID: String
    /// The vault key's public key (P-256), read when the signer was made.
    public let publicKey: Certificate.PublicKey
    /// ES256: ECDSA with SHA-256.
    public var signatureAlgorithm: Certificate.SignatureAlgorithm { .ecdsaWithSHA256 }
    /// Where the key lives: the vault key's ID (URL with its version).
    public var keyLocation: KeyLocation { .azureKeyVault(keyID: keyID) }
    let tokens: AADTokenProvider
    let http: HTTPClient

    /// Creates a new `EC-HSM` P-256 key named `name` in the vault.
    public static func create(vaultURL: String, name: String, tokens: AADTokenProvider, http: HTTPClient) async throws
        -> AzureKeyVaultSigner
    {
        let body = try JSONSerialization.data(withJSONObject: [
            "kty": "EC-HSM", "crv": "P-256", "key_ops": ["sign", "verify"],
        ])
        let answer = try await call(
            .POST, trimmed(vaultURL) + "/keys/\(name)/create?api-version=\(apiVersion)", body: Array(body),
            tokens: tokens,
            http: http)
        return try signer(from: answer, tokens: tokens, http: http)
    }

    /// Uses an existing key: `{vault}/keys/{name}` (latest version) or a full key identifier.
    public static func existing(keyURL: String, tokens: AADTokenProvider, http: HTTPClient) async throws
        -> AzureKeyVaultSigner
    {
        let answer = try await call(
            .GET, trimmed(keyURL) + "?api-version=\(apiVersion)", body: nil, tokens: tokens, http: http)
        return try signer(from: answer, tokens: tokens, http: http)
    }

    /// Hashes `message` (SHA-256), has the vault sign the digest and answers the DER signature;
    /// `signerUnavailable` when the vault cannot be reached, `signingFailed` when it refuses.
    public func sign(_ message: [UInt8]) async throws -> [UInt8] {
        let digest = Array(SHA256.hash(data: message))
        let body = try JSONSerialization.data(withJSONObject: ["alg": "ES256", "value": Base64URL.encode(digest)])
        let answer = try await Self.call(
            .POST, keyID + "/sign?api-version=\(Self.apiVersion)", body: Array(body), tokens: tokens, http: http)
        guard let value = answer["value"] as? String, let raw = Base64URL.decode(value), raw.count == 64,
            let signature = try? P256.Signing.ECDSASignature(rawRepresentation: raw)
        else {
            throw KeygateError(.signingFailed, "Key Vault returned a signature that is not a raw P-256 r‖s")
        }
        return Array(signature.derRepresentation)
    }

    // MARK: Plumbing

    private static func signer(from answer: [String: Any], tokens: AADTokenProvider, http: HTTPClient) throws
        -> AzureKeyVaultSigner
    {
        guard let key = answer["key"] as? [String: Any], let kid = key["kid"] as? String,
            key["crv"] as? String == "P-256",
            let x = (key["x"] as? String).flatMap(Base64URL.decode),
            let y = (key["y"] as? String).flatMap(Base64URL.decode),
            let publicKey = try? P256.Signing.PublicKey(rawRepresentation: x + y)
        else {
            throw KeygateError(.unsupportedKey, "the Key Vault key is not an EC P-256 key")
        }
        return AzureKeyVaultSigner(keyID: kid, publicKey: .init(publicKey), tokens: tokens, http: http)
    }

    private static func call(
        _ method: HTTPMethod, _ url: String, body: [UInt8]?, tokens: AADTokenProvider, http: HTTPClient
    ) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(try await tokens.token())")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let (status, data, retryAfter) = try await AzureHTTP.send(request, http: http, policy: tokens.policy)
        guard status == 200 else {
            throw AzureHTTP.error(status: status, body: data, retryAfter: retryAfter, service: "Key Vault")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any] else {
            throw KeygateError(.signingFailed, "Key Vault answered with something that is not JSON")
        }
        return object
    }

    private static func trimmed(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }

}
