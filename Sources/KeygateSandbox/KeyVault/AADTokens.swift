import Crypto
import Foundation
import KeygatePKI

/// The sandbox's stand-in for Microsoft Entra ID's client-credentials flow: bearer tokens are
/// `base64url(claims).base64url(HMAC)`, checked by the Key Vault routes.
struct AADTokens: Sendable {
    let key: SymmetricKey
    static let lifetime: TimeInterval = 3599

    init(state: SandboxState) {
        key = SymmetricKey(data: Base64URL.decode(state.tokenKey) ?? [])
    }

    struct Claims: Codable {
        var clientID: String
        var scope: String
        var expiresAt: Date
    }

    func issue(clientID: String, scope: String, now: Date = Date()) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        let claims = Array(try encoder.encode(Claims(clientID: clientID, scope: scope, expiresAt: now + Self.lifetime)))
        let mac = HMAC<SHA256>.authenticationCode(for: claims, using: key)
        return Base64URL.encode(claims) + "." + Base64URL.encode(Array(mac))
    }

    /// The claims of a valid, unexpired token for `scope`, or nil.
    func verify(_ token: String, scope: String, now: Date = Date()) -> Claims? {
        let parts = token.split(separator: ".")
        guard parts.count == 2, let claims = Base64URL.decode(String(parts[0])),
            let mac = Base64URL.decode(String(parts[1])),
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: claims, using: key)
        else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        guard let decoded = try? decoder.decode(Claims.self, from: Data(claims)), decoded.expiresAt > now,
            decoded.scope == scope
        else { return nil }
        return decoded
    }
}

/// A digest the caller computed (Key Vault signs digests, it does not hash).
struct PrecomputedDigest: Digest {
    static var byteCount: Int { 32 }
    let bytes: [UInt8]

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }

    func makeIterator() -> IndexingIterator<[UInt8]> { bytes.makeIterator() }

    var description: String { "PrecomputedDigest(\(bytes.count) bytes)" }
}
