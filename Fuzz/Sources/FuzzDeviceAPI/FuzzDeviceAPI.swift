// The device API (KeygateAttestation/Wire) and the attestation checks behind it. The input is tried
// as the JSON body of every /device/v1 request, checked the way the server checks it (DDK, x509
// bootstrap and symmetric-key attestations, with a fixed audience, nonce and keys); as every answer the
// agent decodes (a challenge is then attested the way `keygate-agent` does, and the attestation must
// verify); and as raw bytes for DDKProtocol's signature check and the CSR payload helpers.
import Crypto
import Foundation
import FuzzSupport
import KeygateAttestation
import KeygatePKI
import X509

/// What the seeds in Corpus/FuzzDeviceAPI were made for: the challenge the server handed out.
private let audience = "keygate:fuzz"
private let nonce: [UInt8] = Array(0..<32)
private let groupKey = Data((0..<64).map { UInt8($0) }).base64EncodedString()
private let identity = DDKIdentity(deviceID: "device-1", attributes: DDKAttributes(strings: ["machine-id": "fuzz"]))
/// The DDK key the server expects (one for every epoch: only the check is fuzzed, not the store).
private let expectedDDKKey = identity.epochPublicKey(1)
private let nextSecret: [UInt8] = Array(repeating: 7, count: 32)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let body = Data(bytes)
    serverSide(body)
    agentSide(body)
    rawBytes(bytes)
    return 0
}

// MARK: The server: request bodies (decoded as Hummingbird's routes decode them)

private func serverSide(_ body: Data) {
    let decoder = JSONDecoder()
    if let request = try? decoder.decode(DeviceAPI.ChallengeRequest.self, from: body) {
        _ = request.deviceId.utf8.count
    }
    if let request = try? decoder.decode(DeviceAPI.RegisterRequest.self, from: body) {
        // EnrollmentService.register
        if let p0 = Base64URL.decode(request.publicKey), let p1 = Base64URL.decode(request.nextPublicKey),
            let signature = Base64URL.decode(request.signature), DDKProtocol.isValidPublicKey(p0),
            DDKProtocol.isValidPublicKey(p1), p0 != p1
        {
            let message = DDKProtocol.registrationMessage(
                audience: audience, deviceID: request.deviceId, nonce: nonce, publicKey: p0, nextPublicKey: p1)
            _ = DDKProtocol.verify(signature: signature, message: message, publicKey: p0)
        }
    }
    if let request = try? decoder.decode(DeviceAPI.EnrollRequest.self, from: body) {
        // EnrollmentService.enroll: the CSR's DER is the payload the attestation binds.
        let csr = DeviceAPI.payloadIfPEM(request.csr)
        if let csr { _ = try? CSRPolicy().check(csr) }
        check(request.attestation, deviceID: request.deviceId, payload: csr ?? [])
    }
    if let request = try? decoder.decode(DeviceAPI.StatusRequest.self, from: body) {
        check(request.attestation, deviceID: request.deviceId, payload: DeviceAPI.statusPayload)
    }
    if let request = try? decoder.decode(DeviceAPI.ForkProofRequest.self, from: body) {
        // EnrollmentService.forkProof (the server checks the epoch against the device's first).
        if request.proofEpoch >= 0, let claimed = Base64URL.decode(request.claimedPublicKey),
            let signature = Base64URL.decode(request.signature)
        {
            let message = DDKProtocol.forkProofMessage(
                audience: audience, deviceID: request.deviceId, nonce: nonce, proofEpoch: UInt64(request.proofEpoch),
                claimedPublicKey: claimed)
            _ = DDKProtocol.verify(signature: signature, message: message, publicKey: expectedDDKKey)
        }
    }
    if let request = try? decoder.decode(DeviceAPI.RenewRequest.self, from: body),
        let csr = DeviceAPI.payloadIfPEM(request.csr)
    {
        _ = try? CSRPolicy().check(csr)
    }
}

/// DeviceSessions.authenticate, without the store: the attestation's fields decoded and verified.
private func check(_ attestation: DeviceAPI.Attestation, deviceID: String, payload: [UInt8]) {
    switch attestation.method {
    case .ddk:
        // The server compares the epoch with the device's (never negative) before using it.
        guard let epoch = attestation.epoch, epoch >= 0,
            let next = attestation.nextPublicKey.flatMap(Base64URL.decode), DDKProtocol.isValidPublicKey(next),
            let signature = attestation.signature.flatMap(Base64URL.decode)
        else { return }
        let message = DDKProtocol.authenticationMessage(
            audience: audience, deviceID: deviceID, nonce: nonce, epoch: UInt64(epoch), nextPublicKey: next,
            payload: payload)
        _ = DDKProtocol.verify(signature: signature, message: message, publicKey: expectedDDKKey)
    case .x509:
        guard let chain = attestation.certificateChain,
            let signature = attestation.signature.flatMap(Base64URL.decode)
        else { return }
        _ = try? runBlocking {
            try await BootstrapAttestation.verify(
                chainPEM: chain, signature: signature, trustedCAs: [Fixtures.bootstrapCA], deviceID: deviceID,
                audience: audience, nonce: nonce, payload: payload, now: Fixtures.now)
        }
    case .symmetricKey:
        guard let mac = attestation.mac.flatMap(Base64URL.decode) else { return }
        _ = try? SymmetricKeyAttestation.verify(
            mac: mac, groupKey: groupKey, deviceID: deviceID, audience: audience, nonce: nonce, payload: payload)
    }
}

// MARK: The agent: answers from the server (a hostile or broken server must not crash a device)

private func agentSide(_ body: Data) {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    if let challenge = try? decoder.decode(DeviceAPI.Challenge.self, from: body) {
        attest(challenge)
    }
    _ = try? decoder.decode(DeviceAPI.EnrollResponse.self, from: body)
    _ = try? decoder.decode(DeviceAPI.StatusResponse.self, from: body)
    _ = try? decoder.decode(DeviceAPI.RenewalInfo.self, from: body)
    _ = try? decoder.decode(DeviceAPI.ErrorBody.self, from: body)
}

/// What `keygate-agent` does with a challenge; whatever it sends must verify on the server's side.
private func attest(_ challenge: DeviceAPI.Challenge) {
    guard let challengeNonce = try? challenge.nonceBytes else { return }
    let payload = DeviceAPI.statusPayload
    if let request = try? identity.register(challenge, nextSecret: nextSecret) {
        let p0 = Base64URL.decode(request.publicKey) ?? []
        let p1 = Base64URL.decode(request.nextPublicKey) ?? []
        let message = DDKProtocol.registrationMessage(
            audience: challenge.audience, deviceID: identity.deviceID, nonce: challengeNonce, publicKey: p0,
            nextPublicKey: p1)
        fuzzCheck(
            DDKProtocol.verify(
                signature: Base64URL.decode(request.signature) ?? [], message: message, publicKey: p0),
            "a DDK registration does not verify")
    }
    if let attestation = try? identity.authenticate(challenge, payload: payload, secret: nil, nextSecret: nextSecret) {
        let epoch = UInt64(challenge.epoch)
        let message = DDKProtocol.authenticationMessage(
            audience: challenge.audience, deviceID: identity.deviceID, nonce: challengeNonce, epoch: epoch,
            nextPublicKey: Base64URL.decode(attestation.nextPublicKey ?? "") ?? [], payload: payload)
        fuzzCheck(
            DDKProtocol.verify(
                signature: attestation.signature.flatMap(Base64URL.decode) ?? [], message: message,
                publicKey: identity.epochPublicKey(epoch)),
            "a DDK attestation does not verify")
    }
    _ = try? identity.forkProof(challenge, proofEpoch: challenge.epoch)
    let deviceKey =
        (try? SymmetricKeyAttestation.deriveDeviceKey(groupKey: groupKey, deviceID: identity.deviceID)) ?? ""
    if let attestation = try? SymmetricKeyAttestation.attest(
        challenge, deviceID: identity.deviceID, deviceKey: deviceKey, payload: payload)
    {
        let valid = try? SymmetricKeyAttestation.verify(
            mac: attestation.mac.flatMap(Base64URL.decode) ?? [], groupKey: groupKey, deviceID: identity.deviceID,
            audience: challenge.audience, nonce: challengeNonce, payload: payload)
        fuzzCheck(valid == true, "a symmetric-key attestation does not verify")
    }
}

// MARK: Raw bytes

/// `u16 length ‖ signature ‖ u16 length ‖ public key ‖ message` for DDKProtocol's check; after a
/// 0xC7 byte, `u16 length ‖ nonce ‖ int64 epoch ‖ u16 length ‖ audience` as a challenge (numbers the
/// JSON seldom mutates into, like negative epochs); the whole input as a CSR PEM for the payload helpers.
private func rawBytes(_ bytes: [UInt8]) {
    var rest = bytes[...]
    func part() -> [UInt8] {
        guard rest.count >= 2 else { return [] }
        let count = min(Int(rest[rest.startIndex]) << 8 | Int(rest[rest.startIndex + 1]), rest.count - 2)
        let value = Array(rest.dropFirst(2).prefix(count))
        rest = rest.dropFirst(2 + count)
        return value
    }
    func integer() -> Int {
        let value = rest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        rest = rest.dropFirst(8)
        return Int(truncatingIfNeeded: value)
    }
    let signature = part()
    let publicKey = part()
    let message = Array(rest)
    if bytes.first == 0xC7 {
        rest = bytes.dropFirst()
        attest(
            DeviceAPI.Challenge(
                challengeId: "c", nonce: Base64URL.encode(part()), epoch: integer(),
                audience: String(decoding: part(), as: UTF8.self), expiresAt: Fixtures.now, action: "authenticate",
                methods: AttestationMethod.allCases))
    }
    _ = DDKProtocol.isValidPublicKey(publicKey)
    _ = DDKProtocol.verify(signature: signature, message: message, publicKey: publicKey)
    _ = DDKProtocol.verify(signature: signature, message: message, publicKey: expectedDDKKey)
    let text = String(decoding: bytes, as: UTF8.self)
    _ = DeviceAPI.payload(csrPEM: text)
    _ = DeviceAPI.payloadIfPEM(text)
    _ = DDKAttributes(["raw": bytes]).fingerprint
}
