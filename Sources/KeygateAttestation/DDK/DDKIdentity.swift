public import Crypto
import Foundation

/// The device side of DDK: keys derived from the attributes, never stored.
///
/// ```
/// R   = HKDF-SHA256(ikm: F ‖ seed, salt: "keygate-ddk-v1", info: deviceID)
/// K_0 = P-256 scalar HKDF-Expand(R, "epoch" ‖ uint64be(0) [‖ counter])        (pinnable at staging)
/// R_e = HKDF-SHA256(ikm: R ‖ s_e, salt: "keygate-ddk-ratchet-v1", info: deviceID)
/// K_e = P-256 scalar HKDF-Expand(R_e, "epoch" ‖ uint64be(e) [‖ counter])      (e ≥ 1, the ratchet)
/// TLS key of generation g: HKDF-Expand(R, "tls" ‖ uint64be(g) [‖ counter])
/// ```
///
/// `s_e` is 32 random bytes the device draws for each session and keeps in its state folder: a copy
/// of the device that runs a session moves Keygate to a key the other copy cannot derive. Devices
/// enrolled before the ratchet derived every `K_e` from `R` alone (``epochKey(_:)``); they move to the
/// ratchet at their next session.
public struct DDKIdentity: Sendable {
    /// The device ID, bound into the root secret and into every signed message.
    public let deviceID: String
    private let root: SymmetricKey

    /// Derives the root secret `R` from the attributes' fingerprint, the optional `seed` and the device ID.
    public init(deviceID: String, attributes: DDKAttributes, seed: [UInt8] = []) {
        self.deviceID = deviceID
        root = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: attributes.fingerprint + seed), salt: Array("keygate-ddk-v1".utf8),
            info: Array(deviceID.utf8), outputByteCount: 32)
    }

    /// `K_e`, the key of epoch `e`.
    public func epochKey(_ epoch: UInt64) -> P256.Signing.PrivateKey {
        derive(label: "epoch", index: epoch)
    }

    /// The operational (TLS) key of certificate generation `g`.
    public func tlsKey(generation: UInt64) -> P256.Signing.PrivateKey {
        derive(label: "tls", index: generation)
    }

    /// `P_e` as SubjectPublicKeyInfo DER.
    public func epochPublicKey(_ epoch: UInt64) -> [UInt8] {
        Array(epochKey(epoch).publicKey.derRepresentation)
    }

    /// `K_e` of the ratchet: from `R` and the session secret `s_e`; `nil` secret: ``epochKey(_:)``
    /// (epoch 0, and epochs a device reached before it moved to the ratchet).
    public func epochKey(_ epoch: UInt64, secret: [UInt8]?) -> P256.Signing.PrivateKey {
        guard let secret else { return epochKey(epoch) }
        let chained = root.withUnsafeBytes { Array($0) } + secret
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: chained), salt: Array("keygate-ddk-ratchet-v1".utf8),
            info: Array(deviceID.utf8), outputByteCount: 32)
        return derive(label: "epoch", index: epoch, from: key)
    }

    /// `P_e` of the ratchet as SubjectPublicKeyInfo DER.
    public func epochPublicKey(_ epoch: UInt64, secret: [UInt8]?) -> [UInt8] {
        Array(epochKey(epoch, secret: secret).publicKey.derRepresentation)
    }

    /// A fresh session secret (32 random bytes).
    public static func newSessionSecret() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    private func derive(label: String, index: UInt64) -> P256.Signing.PrivateKey {
        derive(label: label, index: index, from: root)
    }

    private func derive(label: String, index: UInt64, from secret: SymmetricKey) -> P256.Signing.PrivateKey {
        var info = Array(label.utf8) + DDKEncoding.uint64(index)
        var counter: UInt8 = 0
        while true {
            let scalar = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: info, outputByteCount: 32)
            if let key = scalar.withUnsafeBytes({ try? P256.Signing.PrivateKey(rawRepresentation: Array($0)) }) {
                return key
            }
            // Zero or not below the group order (probability ~2^-32): append a counter and retry.
            counter &+= 1
            info = Array(label.utf8) + DDKEncoding.uint64(index) + [counter]
        }
    }
}
