public import Crypto
import Foundation

/// The device side of DDK: keys derived from the attributes, never stored.
///
/// ```
/// R   = HKDF-SHA256(ikm: F ‖ seed, salt: "keygate-ddk-v1", info: deviceID)
/// K_e = P-256 scalar HKDF-Expand(R, "epoch" ‖ uint64be(e) [‖ counter])
/// TLS key of generation g: the same with "tls" ‖ uint64be(g)
/// ```
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

    private func derive(label: String, index: UInt64) -> P256.Signing.PrivateKey {
        let secret = root
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
