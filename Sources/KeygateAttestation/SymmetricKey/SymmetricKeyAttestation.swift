import Crypto
import Foundation
import KeygatePKI

/// DPS-style symmetric keys: each device key is derived from the group key, and the device proves
/// it holds its key with an HMAC over the challenge.
public enum SymmetricKeyAttestation {
    /// `base64(HMAC-SHA256(key: base64decode(groupKey), message: deviceId))`, as DPS derives device keys.
    public static func deriveDeviceKey(groupKey: String, deviceID: String) throws -> String {
        guard let key = Data(base64Encoded: groupKey), !key.isEmpty else {
            throw AttestationError.malformed("the group key is not base64")
        }
        let mac = HMAC<SHA256>.authenticationCode(for: Array(deviceID.utf8), using: SymmetricKey(data: key))
        return Data(mac).base64EncodedString()
    }

    /// A new random group key (64 bytes, base64), like the keys DPS generates.
    public static func generateGroupKey() -> String {
        let key = SymmetricKey(size: .init(bitCount: 512))
        return key.withUnsafeBytes { Data($0) }.base64EncodedString()
    }

    /// `"keygate-sym-auth-v1" ‖ audience ‖ deviceId ‖ nonce ‖ SHA-256(payload)`
    public static func message(audience: String, deviceID: String, nonce: [UInt8], payload: [UInt8]) -> [UInt8] {
        DDKEncoding.message([
            Array("keygate-sym-auth-v1".utf8), Array(audience.utf8), Array(deviceID.utf8), nonce,
            Array(SHA256.hash(data: payload)),
        ])
    }

    /// The device's proof: HMAC-SHA256 with its derived key.
    public static func attest(
        _ challenge: DeviceAPI.Challenge, deviceID: String, deviceKey: String, payload: [UInt8]
    ) throws -> DeviceAPI.Attestation {
        guard let key = Data(base64Encoded: deviceKey) else {
            throw AttestationError.malformed("the device key is not base64")
        }
        let mac = HMAC<SHA256>.authenticationCode(
            for: message(
                audience: challenge.audience, deviceID: deviceID, nonce: try challenge.nonceBytes, payload: payload),
            using: SymmetricKey(data: key))
        return DeviceAPI.Attestation(method: .symmetricKey, mac: Base64URL.encode(Array(mac)))
    }

    /// The server's check, in constant time.
    public static func verify(
        mac: [UInt8], groupKey: String, deviceID: String, audience: String, nonce: [UInt8], payload: [UInt8]
    ) throws -> Bool {
        guard let deviceKey = Data(base64Encoded: try deriveDeviceKey(groupKey: groupKey, deviceID: deviceID)) else {
            return false
        }
        return HMAC<SHA256>.isValidAuthenticationCode(
            mac, authenticating: message(audience: audience, deviceID: deviceID, nonce: nonce, payload: payload),
            using: SymmetricKey(data: deviceKey))
    }
}

/// Why an attestation could not even be checked.
public enum AttestationError: Error, Sendable, CustomStringConvertible {
    case malformed(String)

    /// The reason text; the server returns it as a `malformedInput` message.
    public var description: String {
        switch self {
        case .malformed(let text): return text
        }
    }
}
