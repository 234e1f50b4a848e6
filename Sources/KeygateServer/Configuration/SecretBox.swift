import Crypto
import CryptoExtras
import Foundation
import KeygatePKI
import Synchronization

/// Seals secrets kept in the database (group symmetric keys, connector credentials) and beside it
/// (the audit chain key, a Key Vault client secret) with a key derived from the CA passphrase, so
/// that neither the database nor a copy of the folder alone gives them away.
///
/// `v2:` values (what ``seal(_:)`` writes): `key = PBKDF2-HMAC-SHA256(passphrase, salt, 600,000)`,
/// as for the CA key files, AES-256-GCM; the value is `v2:` + base64(salt) + `:` + base64(nonce ‖
/// ciphertext ‖ tag). Derived keys are kept in memory per salt, so only the first use of a salt pays
/// for the derivation. `v1:` values (HKDF, before v2) still open; ``needsResealing(_:)`` finds them
/// and the server seals them again as v2 when it starts.
public struct SecretBox: Sendable {
    private let passphrase: String
    private let salt: [UInt8]

    /// The PBKDF2 iteration count of v2 values (the CA key files' count).
    static let iterations = EncryptedPrivateKey.defaultIterations

    /// Derived keys by SHA-256 of passphrase and salt, for this process.
    private static let derived = Mutex<[Data: SymmetricKey]>([:])
    /// The salt this process seals with, per passphrase (SHA-256).
    private static let sealingSalts = Mutex<[Data: [UInt8]]>([:])

    /// Seals with a salt chosen once per passphrase for this process; opens values of any salt.
    public init(passphrase: String) {
        self.passphrase = passphrase
        let id = Data(SHA256.hash(data: Array(passphrase.utf8)))
        self.salt = Self.sealingSalts.withLock { salts in
            if let salt = salts[id] { return salt }
            let salt = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
            salts[id] = salt
            return salt
        }
    }

    private func key(salt: [UInt8]) throws -> SymmetricKey {
        var hasher = SHA256()
        hasher.update(data: Array(passphrase.utf8))
        hasher.update(data: [0])
        hasher.update(data: salt)
        let id = Data(hasher.finalize())
        if let key = Self.derived.withLock({ $0[id] }) { return key }
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(passphrase.utf8), salt: salt, using: .sha256, outputByteCount: 32,
            unsafeUncheckedRounds: Self.iterations)
        Self.derived.withLock { $0[id] = key }
        return key
    }

    private var legacyKey: SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array(passphrase.utf8)), salt: Array("keygate-secrets-v1".utf8),
            info: Array("secret-box".utf8), outputByteCount: 32)
    }

    /// Encrypts `secret` with a fresh nonce as a `v2:` value.
    public func seal(_ secret: String) throws -> String {
        guard let combined = try AES.GCM.seal(Array(secret.utf8), using: try key(salt: salt)).combined else {
            throw KeygateError(.internalError, "cannot seal a secret")
        }
        return "v2:" + Data(salt).base64EncodedString() + ":" + combined.base64EncodedString()
    }

    /// Decrypts a value made by ``seal(_:)`` (or a `v1:` value); throws `internalError` when it cannot
    /// (another passphrase, damaged text).
    public func open(_ sealed: String) throws -> String {
        let failure = KeygateError(.internalError, "a sealed secret cannot be opened: was the passphrase changed?")
        let key: SymmetricKey
        let body: Substring
        if sealed.hasPrefix("v2:") {
            let parts = sealed.dropFirst(3).split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let salt = Data(base64Encoded: String(parts[0])), salt.count >= 16 else {
                throw failure
            }
            key = try self.key(salt: Array(salt))
            body = parts[1]
        } else if sealed.hasPrefix("v1:") {
            key = legacyKey
            body = sealed.dropFirst(3)
        } else {
            throw failure
        }
        guard let data = Data(base64Encoded: String(body)), let box = try? AES.GCM.SealedBox(combined: data),
            let plain = try? AES.GCM.open(box, using: key)
        else { throw failure }
        return String(decoding: plain, as: UTF8.self)
    }

    /// Whether `sealed` is an older format that ``seal(_:)`` would write differently (`v1:`).
    public static func needsResealing(_ sealed: String) -> Bool { sealed.hasPrefix("v1:") }

    /// The value sealed again as v2, or `nil` when it already is.
    public func resealed(_ sealed: String) throws -> String? {
        Self.needsResealing(sealed) ? try seal(try open(sealed)) : nil
    }
}
