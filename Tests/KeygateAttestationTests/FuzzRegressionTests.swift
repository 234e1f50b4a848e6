import Foundation
import KeygateAttestation
import KeygatePKI
import Testing

/// Inputs the fuzzers in Fuzz/ (`scripts/fuzz.sh`) found crashing, kept as tests.
@Suite struct FuzzRegressionTests {
    let identity = DDKIdentity(deviceID: "device-1", attributes: DDKAttributes(strings: ["machine-id": "fuzz"]))

    func decodeChallenge(_ json: String) throws -> DeviceAPI.Challenge {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601  // as the agent decodes it
        return try decoder.decode(DeviceAPI.Challenge.self, from: Data(json.utf8))
    }

    /// FuzzDeviceAPI: a challenge (the server's answer, so not trusted) with a negative epoch trapped in
    /// `DDKIdentity.authenticate` (`UInt64(challenge.epoch)`); it is refused as malformed now.
    @Test(arguments: ["-1", "-9223372036854775808"])
    func negativeChallengeEpochIsRefused(epoch: String) throws {
        let challenge = try decodeChallenge(
            #"{"challengeId":"c-7","nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","epoch":"#
                + epoch
                + #","audience":"keygate:fuzz","expiresAt":"2027-12-28T13:21:00Z","action":"authenticate","#
                + #""methods":["ddk","x509","symmetric-key"]}"#)
        #expect(throws: AttestationError.self) {
            try identity.authenticate(challenge, payload: DeviceAPI.statusPayload)
        }
        #expect(throws: AttestationError.self) {
            try identity.authenticate(
                challenge, payload: DeviceAPI.statusPayload, secret: nil, nextSecret: Array(repeating: 7, count: 32))
        }
        // A fork proof clamps its epoch to 0 and still signs.
        _ = try identity.forkProof(challenge, proofEpoch: challenge.epoch)
    }
}
