import Crypto
import CryptoExtras
public import Foundation
public import KeygateAttestation
import KeygatePKI
import SwiftASN1
import X509

/// The device's side of enrollment: register when needed, attest, make a key, send the CSR,
/// keep the certificate chain.
public struct Enrollment: Sendable {
    /// How the device proves who it is.
    public enum Credential: Sendable {
        case ddk(attributes: DDKAttributes, seed: [UInt8])
        case x509(chainPEM: [String], keyPEM: String)
        case symmetricKey(deviceKey: String)

        var method: AttestationMethod {
            switch self {
            case .ddk: return .ddk
            case .x509: return .x509
            case .symmetricKey: return .symmetricKey
            }
        }
    }

    public let deviceID: String
    public let credential: Credential
    public let client: DeviceClient
    public let folder: StateFolder
    public var enrollmentToken: String?

    public init(
        deviceID: String, credential: Credential, client: DeviceClient, folder: StateFolder,
        enrollmentToken: String? = nil
    ) {
        self.deviceID = deviceID
        self.credential = credential
        self.client = client
        self.folder = folder
        self.enrollmentToken = enrollmentToken
    }

    /// What `run` ended with.
    public enum Outcome: Sendable, Equatable {
        case enrolled(serial: String, notAfter: Date)
        case pendingApproval
    }

    /// Registers (DDK, first contact), attests and enrolls; writes `device.crt.pem` and `state.json`.
    public func run() async throws -> Outcome {
        var state =
            folder.load()
            ?? AgentState(deviceId: deviceID, server: client.baseURL, attestation: credential.method.rawValue)
        var challenge = try await client.challenge(deviceID)
        if challenge.action == "register" {
            guard case .ddk(let attributes, let seed) = credential else {
                throw AgentError("the server asks for DDK registration; use --attestation ddk")
            }
            var request = try DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed).register(challenge)
            request.enrollmentToken = enrollmentToken
            _ = try await client.register(request)
            state.ddkEpoch = 1
            try folder.save(state)
            challenge = try await client.challenge(deviceID)
        }
        let csrPEM = try makeCSR(state: state)
        let payload = DeviceAPI.payload(csrPEM: csrPEM)
        let attestation = try attest(challenge, payload: payload)
        let answer: DeviceAPI.EnrollResponse
        do {
            answer = try await client.enroll(
                DeviceAPI.EnrollRequest(
                    deviceId: deviceID, challengeId: challenge.challengeId, csr: csrPEM, attestation: attestation,
                    enrollmentToken: enrollmentToken))
        } catch let error as DeviceClient.APIError where error.code == "forkProofRequired" {
            try await sendForkProof(failedEpoch: challenge.epoch, state: state)
            throw error
        }
        if case .ddk = credential { state.ddkEpoch = challenge.epoch + 1 }
        state.state = answer.status
        guard answer.status == "enrolled", let chain = answer.certificateChain, let serial = answer.serial,
            let notAfter = answer.notAfter
        else {
            try folder.save(state)
            return .pendingApproval
        }
        try folder.write(Data(chain.utf8), to: folder.certificateFile, mode: 0o644)
        state.certificateSerial = serial
        state.certificateNotAfter = notAfter
        try folder.save(state)
        return .enrolled(serial: serial, notAfter: notAfter)
    }

    /// A status session.
    public func status() async throws -> DeviceAPI.StatusResponse {
        let challenge = try await client.challenge(deviceID)
        guard challenge.action != "register" else { throw AgentError("not registered yet; run enroll first") }
        let attestation = try attest(challenge, payload: DeviceAPI.statusPayload)
        var state =
            folder.load()
            ?? AgentState(deviceId: deviceID, server: client.baseURL, attestation: credential.method.rawValue)
        do {
            let status = try await client.status(
                .init(deviceId: deviceID, challengeId: challenge.challengeId, attestation: attestation))
            if case .ddk = credential {
                state.ddkEpoch = challenge.epoch + 1
                try folder.save(state)
            }
            return status
        } catch let error as DeviceClient.APIError where error.code == "forkProofRequired" {
            try await sendForkProof(failedEpoch: challenge.epoch, state: state)
            throw error
        }
    }

    /// After `forkProofRequired`: proves the epoch of this device's last good session (or, without
    /// a record of it, the one before the failed epoch); the server decides clone or failure.
    private func sendForkProof(failedEpoch: Int, state: AgentState) async throws {
        guard case .ddk(let attributes, let seed) = credential else { return }
        var proofEpoch = failedEpoch - 1
        if let last = state.ddkEpoch, last < failedEpoch { proofEpoch = last }
        let challenge = try await client.challenge(deviceID)
        let proof = try DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed)
            .forkProof(challenge, proofEpoch: max(proofEpoch, 0))
        try await client.forkProof(proof)
    }

    func attest(_ challenge: DeviceAPI.Challenge, payload: [UInt8]) throws -> DeviceAPI.Attestation {
        switch credential {
        case .ddk(let attributes, let seed):
            return try DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed).authenticate(
                challenge, payload: payload)
        case .x509(let chainPEM, let keyPEM):
            let key = try BootstrapKey(pem: keyPEM)
            return try BootstrapAttestation.attest(
                challenge, deviceID: deviceID, chainPEM: chainPEM, payload: payload, sign: key.sign)
        case .symmetricKey(let deviceKey):
            return try SymmetricKeyAttestation.attest(
                challenge, deviceID: deviceID, deviceKey: deviceKey, payload: payload)
        }
    }

    /// The operational key and its CSR: derived (DDK, nothing stored) or random (stored 0600).
    func makeCSR(state: AgentState) throws -> String {
        let key: Certificate.PrivateKey
        switch credential {
        case .ddk(let attributes, let seed):
            let identity = DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed)
            key = Certificate.PrivateKey(identity.tlsKey(generation: UInt64(state.tlsGeneration)))
        case .x509, .symmetricKey:
            let fresh = P256.Signing.PrivateKey()
            try folder.write(Data(fresh.pemRepresentation.utf8), to: folder.keyFile, mode: 0o600)
            key = Certificate.PrivateKey(fresh)
        }
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(deviceID) }, privateKey: key, attributes: .init())
        return try csr.serializeAsPEM().pemString
    }
}

/// A bootstrap (manufacturer) private key from PEM: P-256, P-384 or Ed25519.
struct BootstrapKey {
    let sign: ([UInt8]) throws -> [UInt8]

    init(pem: String) throws {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) {
            sign = { Array(try key.signature(for: $0).derRepresentation) }
        } else if let key = try? P384.Signing.PrivateKey(pemRepresentation: pem) {
            sign = { Array(try key.signature(for: $0).derRepresentation) }
        } else if let key = try? Curve25519.Signing.PrivateKey(pemRepresentation: pem) {
            sign = { Array(try key.signature(for: $0)) }
        } else {
            throw AgentError("the bootstrap key must be an unencrypted P-256, P-384 or Ed25519 PEM key")
        }
    }
}
