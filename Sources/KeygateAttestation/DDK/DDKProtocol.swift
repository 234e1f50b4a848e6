import Crypto
import Foundation
import KeygatePKI

/// The signed messages of DDK (docs/ddk.md), for both sides. Every part is length-prefixed
/// (4-byte big-endian length) so no two different inputs produce the same bytes.
public enum DDKProtocol {
    /// `"keygate-ddk-register-v1" ‖ audience ‖ deviceId ‖ nonce ‖ P_0 ‖ P_1`
    public static func registrationMessage(
        audience: String, deviceID: String, nonce: [UInt8], publicKey: [UInt8], nextPublicKey: [UInt8]
    ) -> [UInt8] {
        DDKEncoding.message([
            Array("keygate-ddk-register-v1".utf8), Array(audience.utf8), Array(deviceID.utf8), nonce, publicKey,
            nextPublicKey,
        ])
    }

    /// `"keygate-ddk-auth-v1" ‖ audience ‖ deviceId ‖ nonce ‖ uint64be(e) ‖ P_{e+1} ‖ SHA-256(payload)`
    public static func authenticationMessage(
        audience: String, deviceID: String, nonce: [UInt8], epoch: UInt64, nextPublicKey: [UInt8], payload: [UInt8]
    ) -> [UInt8] {
        DDKEncoding.message([
            Array("keygate-ddk-auth-v1".utf8), Array(audience.utf8), Array(deviceID.utf8), nonce,
            DDKEncoding.uint64(epoch), nextPublicKey, Array(SHA256.hash(data: payload)),
        ])
    }

    /// `"keygate-ddk-fork-v1" ‖ audience ‖ deviceId ‖ nonce ‖ uint64be(k) ‖ P_{k+1} (the device's own)`
    public static func forkProofMessage(
        audience: String, deviceID: String, nonce: [UInt8], proofEpoch: UInt64, claimedPublicKey: [UInt8]
    ) -> [UInt8] {
        DDKEncoding.message([
            Array("keygate-ddk-fork-v1".utf8), Array(audience.utf8), Array(deviceID.utf8), nonce,
            DDKEncoding.uint64(proofEpoch), claimedPublicKey,
        ])
    }

    /// Verifies a DER ECDSA P-256 signature against an SPKI DER public key.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard let key = try? P256.Signing.PublicKey(derRepresentation: publicKey),
            let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature)
        else { return false }
        return key.isValidSignature(parsed, for: message)
    }

    /// Whether `bytes` is a P-256 SubjectPublicKeyInfo.
    public static func isValidPublicKey(_ bytes: [UInt8]) -> Bool {
        (try? P256.Signing.PublicKey(derRepresentation: bytes)) != nil
    }
}

extension DDKIdentity {
    /// Registration (session 0): signs with `K_0`, announces `P_0` and `P_1`.
    public func register(_ challenge: DeviceAPI.Challenge) throws -> DeviceAPI.RegisterRequest {
        try register(challenge, nextPublicKey: epochPublicKey(1))
    }

    /// Authentication for the epoch the challenge names, binding `payload` (a CSR, say).
    public func authenticate(_ challenge: DeviceAPI.Challenge, payload: [UInt8]) throws -> DeviceAPI.Attestation {
        let epoch = try Self.epoch(of: challenge)
        return try authenticate(
            challenge, payload: payload, key: epochKey(epoch), nextPublicKey: epochPublicKey(epoch + 1))
    }

    /// The fork proof asked for after a failed authentication: signs a fresh challenge with `K_k`
    /// for the device's last good epoch `k` and states the `P_{k+1}` it announced then.
    public func forkProof(_ challenge: DeviceAPI.Challenge, proofEpoch: Int) throws -> DeviceAPI.ForkProofRequest {
        let epoch = UInt64(max(proofEpoch, 0))
        return try forkProof(challenge, epoch: epoch, key: epochKey(epoch), claimed: epochPublicKey(epoch + 1))
    }

    // MARK: The ratchet

    /// Registration with the ratchet: `P_0` from the attributes alone (pinnable), `P_1` from the
    /// session secret `nextSecret`, which the device keeps before it sends this.
    public func register(_ challenge: DeviceAPI.Challenge, nextSecret: [UInt8]) throws -> DeviceAPI.RegisterRequest {
        try register(challenge, nextPublicKey: epochPublicKey(1, secret: nextSecret))
    }

    /// Authentication with the ratchet: signs with `K_e` of the challenge's epoch (from `secret`, the
    /// secret of that epoch; `nil` for a key from the attributes alone) and announces `P_{e+1}` from
    /// `nextSecret`.
    public func authenticate(
        _ challenge: DeviceAPI.Challenge, payload: [UInt8], secret: [UInt8]?, nextSecret: [UInt8]
    ) throws -> DeviceAPI.Attestation {
        let epoch = try Self.epoch(of: challenge)
        return try authenticate(
            challenge, payload: payload, key: epochKey(epoch, secret: secret),
            nextPublicKey: epochPublicKey(epoch + 1, secret: nextSecret))
    }

    /// A fork proof with the ratchet: signs with `K_k` of the device's last confirmed epoch `k` (from
    /// `secret`) and claims the `P_{k+1}` of `claimedSecret` (its own next secret), which differs from
    /// the key another party moved Keygate to.
    public func forkProof(
        _ challenge: DeviceAPI.Challenge, proofEpoch: Int, secret: [UInt8]?, claimedSecret: [UInt8]
    ) throws -> DeviceAPI.ForkProofRequest {
        let epoch = UInt64(max(proofEpoch, 0))
        return try forkProof(
            challenge, epoch: epoch, key: epochKey(epoch, secret: secret),
            claimed: epochPublicKey(epoch + 1, secret: claimedSecret))
    }

    /// The epoch a challenge names, refused when negative: the challenge comes from the server, and
    /// `UInt64(_:)` traps on a negative value (found by fuzzing).
    private static func epoch(of challenge: DeviceAPI.Challenge) throws -> UInt64 {
        guard challenge.epoch >= 0 else {
            throw AttestationError.malformed("the challenge names epoch \(challenge.epoch); epochs are never negative")
        }
        return UInt64(challenge.epoch)
    }

    // MARK: Messages

    private func register(_ challenge: DeviceAPI.Challenge, nextPublicKey p1: [UInt8]) throws
        -> DeviceAPI.RegisterRequest
    {
        let p0 = epochPublicKey(0)
        let message = DDKProtocol.registrationMessage(
            audience: challenge.audience, deviceID: deviceID, nonce: try challenge.nonceBytes, publicKey: p0,
            nextPublicKey: p1)
        let signature = try epochKey(0).signature(for: message).derRepresentation
        return DeviceAPI.RegisterRequest(
            deviceId: deviceID, challengeId: challenge.challengeId, publicKey: Base64URL.encode(p0),
            nextPublicKey: Base64URL.encode(p1), signature: Base64URL.encode(Array(signature)), enrollmentToken: nil)
    }

    private func authenticate(
        _ challenge: DeviceAPI.Challenge, payload: [UInt8], key: P256.Signing.PrivateKey, nextPublicKey next: [UInt8]
    ) throws -> DeviceAPI.Attestation {
        let message = DDKProtocol.authenticationMessage(
            audience: challenge.audience, deviceID: deviceID, nonce: try challenge.nonceBytes,
            epoch: UInt64(challenge.epoch), nextPublicKey: next, payload: payload)
        let signature = try key.signature(for: message).derRepresentation
        return DeviceAPI.Attestation(
            method: .ddk, epoch: challenge.epoch, nextPublicKey: Base64URL.encode(next),
            signature: Base64URL.encode(Array(signature)))
    }

    private func forkProof(
        _ challenge: DeviceAPI.Challenge, epoch: UInt64, key: P256.Signing.PrivateKey, claimed: [UInt8]
    ) throws -> DeviceAPI.ForkProofRequest {
        let message = DDKProtocol.forkProofMessage(
            audience: challenge.audience, deviceID: deviceID, nonce: try challenge.nonceBytes, proofEpoch: epoch,
            claimedPublicKey: claimed)
        let signature = try key.signature(for: message).derRepresentation
        return DeviceAPI.ForkProofRequest(
            deviceId: deviceID, challengeId: challenge.challengeId, proofEpoch: Int(epoch),
            claimedPublicKey: Base64URL.encode(claimed), signature: Base64URL.encode(Array(signature)))
    }
}
