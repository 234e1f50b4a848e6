import Crypto
import Foundation
import KeygateAttestation
import KeygatePKI
import KeygateTestSupport
import Testing

@Suite struct DDKTests {
    let attributes = DDKAttributes(strings: ["machine-id": "4f1c", "mac:eth0": "02:00:00:00:00:01"])

    @Test func canonicalFormIsSortedAndLengthPrefixed() {
        let a = DDKAttributes(strings: ["b": "2", "a": "1"])
        #expect(a.canonicalBytes == [0, 0, 0, 1, 0x61, 0, 0, 0, 1, 0x31, 0, 0, 0, 1, 0x62, 0, 0, 0, 1, 0x32])
        // "ab"+"c" and "a"+"bc" must not collide.
        #expect(DDKAttributes(strings: ["ab": "c"]).fingerprint != DDKAttributes(strings: ["a": "bc"]).fingerprint)
    }

    @Test func keysAreDeterministicAndDistinct() {
        let one = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        let again = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        #expect(one.epochPublicKey(0) == again.epochPublicKey(0))
        #expect(one.epochPublicKey(5) == again.epochPublicKey(5))
        let keys = Set((0..<20).map { one.epochPublicKey(UInt64($0)) })
        #expect(keys.count == 20, "every epoch has its own key")
        #expect(one.tlsKey(generation: 0).publicKey.derRepresentation != one.epochKey(0).publicKey.derRepresentation)
        // Another device ID, other attributes or a seed give other keys.
        #expect(DDKIdentity(deviceID: "dev-2", attributes: attributes).epochPublicKey(0) != one.epochPublicKey(0))
        var changed = attributes
        changed.values["mac:eth0"] = Array("02:00:00:00:00:02".utf8)
        #expect(DDKIdentity(deviceID: "dev-1", attributes: changed).epochPublicKey(0) != one.epochPublicKey(0))
        #expect(
            DDKIdentity(deviceID: "dev-1", attributes: attributes, seed: [1]).epochPublicKey(0) != one.epochPublicKey(0)
        )
    }

    @Test func registrationAndAuthenticationSignaturesVerify() throws {
        let identity = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        let challenge = DeviceAPI.Challenge(
            challengeId: "c1", nonce: Base64URL.encode(Array(repeating: 7, count: 32)), epoch: 0,
            audience: "keygate:test",
            expiresAt: Date() + 60, action: "register", methods: [.ddk])
        let registration = try identity.register(challenge)
        let p0 = try #require(Base64URL.decode(registration.publicKey))
        let p1 = try #require(Base64URL.decode(registration.nextPublicKey))
        let message = DDKProtocol.registrationMessage(
            audience: "keygate:test", deviceID: "dev-1", nonce: Array(repeating: 7, count: 32), publicKey: p0,
            nextPublicKey: p1)
        #expect(
            DDKProtocol.verify(signature: Base64URL.decode(registration.signature)!, message: message, publicKey: p0))
        #expect(
            !DDKProtocol.verify(signature: Base64URL.decode(registration.signature)!, message: message, publicKey: p1))

        var auth = challenge
        auth.epoch = 1
        let attestation = try identity.authenticate(auth, payload: [1, 2, 3])
        let signed = DDKProtocol.authenticationMessage(
            audience: "keygate:test", deviceID: "dev-1", nonce: Array(repeating: 7, count: 32), epoch: 1,
            nextPublicKey: Base64URL.decode(attestation.nextPublicKey!)!, payload: [1, 2, 3])
        #expect(
            DDKProtocol.verify(signature: Base64URL.decode(attestation.signature!)!, message: signed, publicKey: p1))
        let otherPayload = DDKProtocol.authenticationMessage(
            audience: "keygate:test", deviceID: "dev-1", nonce: Array(repeating: 7, count: 32), epoch: 1,
            nextPublicKey: Base64URL.decode(attestation.nextPublicKey!)!, payload: [9])
        #expect(
            !DDKProtocol.verify(
                signature: Base64URL.decode(attestation.signature!)!, message: otherPayload, publicKey: p1))
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func symmetricKeysAreDerivedAsDPSDerivesThem() throws {
        // DPS: base64(HMAC-SHA256(base64decode(groupKey), registrationId)); checked against Python's hmac module.
        let groupKey = Data("keygate-group-key-for-tests-0123".utf8).base64EncodedString()
        let derived = try SymmetricKeyAttestation.deriveDeviceKey(groupKey: groupKey, deviceID: "sensor-1")
        let expected = HMAC<SHA256>.authenticationCode(
            for: Array("sensor-1".utf8), using: SymmetricKey(data: Data("keygate-group-key-for-tests-0123".utf8)))
        #expect(derived == Data(expected).base64EncodedString())
    }
}
