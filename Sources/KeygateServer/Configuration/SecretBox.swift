import Crypto
import Foundation
import KeygatePKI

/// Seals secrets kept in the database (group symmetric keys, later connector credentials) with a
/// key derived from the CA passphrase, so the database alone does not give them away.
///
/// `key = HKDF-SHA256(ikm: passphrase, salt: "keygate-secrets-v1")`, AES-256-GCM, stored as base64.
public struct SecretBox: Sendable {
    private let key: SymmetricKey

    /// Derives the sealing key from the CA passphrase.
    public init(passphrase: String) {
        key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array(passphrase.utf8)), salt: Array("keygate-secrets-v1".utf8),
            info: Array("secret-box".utf8), outputByteCount: 32)
    }

    /// Encrypts `secret` with a fresh nonce; answers `v1:` followed by base64 of nonce, ciphertext and tag.
    public func seal(_ secret: String) throws -> String {
        guard let combined = try AES.GCM.seal(Array(secret.utf8), using: key).combined else {
            throw KeygateError(.internalError, "cannot seal a secret")
        }
        return "v1:" + combined.base64EncodedString()
    }

    /// Decrypts a value made by ``seal(_:)``; throws `internalError` when it cannot (another passphrase, damaged text).
    public func open(_ sealed: String) throws -> String {
        guard sealed.hasPrefix("v1:"), let data = Data(base64Encoded: String(sealed.dropFirst(3))),
            let box = try? AES.GCM.SealedBox(combined: data), let plain = try? AES.GCM.open(box, using: key)
        else {
            throw KeygateError(.internalError, "a sealed secret cannot be opened: was the passphrase changed?")
        }
        return String(decoding: plain, as: UTF8.self)
    }
}
