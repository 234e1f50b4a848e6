import Crypto
import CryptoExtras
public import Foundation
public import KeygateAttestation
import KeygatePKI
import NIOSSL
import SwiftASN1
import X509

/// The device's side of enrollment: register when needed, attest, make a key, send the CSR,
/// keep the certificate chain.
public struct Enrollment: Sendable {
    /// How the device proves who it is.
    public enum Credential: Sendable {
        /// DDK: keys derived from the device's attributes and optional seed, never stored.
        case ddk(attributes: DDKAttributes, seed: [UInt8])
        /// An X.509 bootstrap certificate chain (PEM, leaf first) and its key (PEM).
        case x509(chainPEM: [String], keyPEM: String)
        /// A symmetric device key (base64), derived from the group key and the device ID.
        case symmetricKey(deviceKey: String)

        var method: AttestationMethod {
            switch self {
            case .ddk: return .ddk
            case .x509: return .x509
            case .symmetricKey: return .symmetricKey
            }
        }
    }

    /// The device ID to enroll as.
    public let deviceID: String
    /// How the device proves who it is.
    public let credential: Credential
    /// The connection to Keygate's device API.
    public let client: DeviceClient
    /// Where the state, chain and keys are kept.
    public let folder: StateFolder
    /// The one-time enrollment token the allowlist asks for at first contact; `nil`: none.
    public var enrollmentToken: String?

    /// Creates an enrollment; nothing is sent until ``run()``.
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
        /// Keygate issued a certificate: its serial (hex) and end of validity.
        case enrolled(serial: String, notAfter: Date)
        /// The group needs manual approval; the device asks again later.
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
            // The secret of epoch 1 is kept before the registration is sent (see `ddkSession`).
            let next = DDKIdentity.newSessionSecret()
            var chain = DDKChain(epoch: 0, pendingSecret: Base64URL.encode(next))
            try folder.saveChain(chain)
            var request = try DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed)
                .register(challenge, nextSecret: next)
            request.enrollmentToken = enrollmentToken
            _ = try await client.register(request)
            chain.confirm(epoch: 1)
            try folder.saveChain(chain)
            challenge = try await client.challenge(deviceID)
        }
        // An enrolled device re-attesting renews: a new key, kept aside until the certificate arrives.
        let renewing = state.certificateSerial != nil
        let key = try newKey(state: state, renewing: renewing)
        let csrPEM = try makeCSR(key.privateKey)
        let payload = DeviceAPI.payload(csrPEM: csrPEM)
        let attestation = try await attest(challenge, payload: payload)
        let answer: DeviceAPI.EnrollResponse
        do {
            answer = try await client.enroll(
                DeviceAPI.EnrollRequest(
                    deviceId: deviceID, challengeId: challenge.challengeId, csr: csrPEM, attestation: attestation,
                    enrollmentToken: enrollmentToken))
        } catch let error as DeviceClient.APIError where error.code == "forkProofRequired" {
            try await sendForkProof()
            throw error
        }
        if case .ddk = credential { try confirmSession(epoch: challenge.epoch + 1) }
        state.state = answer.status
        guard answer.status == "enrolled", let chain = answer.certificateChain, let serial = answer.serial,
            let notAfter = answer.notAfter
        else {
            try folder.save(state)
            return .pendingApproval
        }
        try install(chain: chain, serial: serial, notAfter: notAfter, key: key, state: &state)
        return .enrolled(serial: serial, notAfter: notAfter)
    }

    /// Renews over mTLS with the current certificate: a new key, a CSR, the new chain installed.
    public func renew() async throws -> Outcome {
        guard var state = folder.load(), state.certificateSerial != nil else {
            throw AgentError("nothing to renew: the device has no certificate yet")
        }
        let key = try newKey(state: state, renewing: true)
        let answer = try await client.renew(
            DeviceAPI.RenewRequest(deviceId: deviceID, csr: try makeCSR(key.privateKey)),
            identity: try currentIdentity(state))
        guard let chain = answer.certificateChain, let serial = answer.serial, let notAfter = answer.notAfter else {
            throw AgentError("the renewal answer has no certificate")
        }
        try install(chain: chain, serial: serial, notAfter: notAfter, key: key, state: &state)
        return .enrolled(serial: serial, notAfter: notAfter)
    }

    /// When Keygate wants this device to renew, asked with its current certificate.
    public func renewalInfo() async throws -> DeviceAPI.RenewalInfo {
        guard let state = folder.load() else { throw AgentError("the device has no certificate yet") }
        return try await client.renewalInfo(identity: try currentIdentity(state))
    }

    /// The operational key for the next certificate: DDK devices derive generation `g` (the next one
    /// when renewing) and store nothing; other devices make a random key.
    struct OperationalKey {
        var privateKey: Certificate.PrivateKey
        /// Non-DDK: the PEM to write once the certificate is installed.
        var pem: String?
        var generation: Int
    }

    func newKey(state: AgentState, renewing: Bool) throws -> OperationalKey {
        let generation = renewing ? state.tlsGeneration + 1 : state.tlsGeneration
        switch credential {
        case .ddk(let attributes, let seed):
            let identity = DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed)
            return OperationalKey(
                privateKey: Certificate.PrivateKey(identity.tlsKey(generation: UInt64(generation))), pem: nil,
                generation: generation)
        case .x509, .symmetricKey:
            let fresh = P256.Signing.PrivateKey()
            return OperationalKey(
                privateKey: Certificate.PrivateKey(fresh), pem: fresh.pemRepresentation, generation: generation)
        }
    }

    /// Writes the key (non-DDK) and the chain under the new generation's names, then the state,
    /// which switches to them: a crash at any point leaves the state naming a complete pair. The
    /// stable names (`device.crt.pem`, `device.key.pem`) are refreshed afterwards for people and tools.
    private func install(chain: String, serial: String, notAfter: Date, key: OperationalKey, state: inout AgentState)
        throws
    {
        let generation = key.generation
        if let pem = key.pem {
            try folder.write(Data(pem.utf8), to: folder.keyFile(generation: generation), mode: 0o600)
        }
        try folder.write(Data(chain.utf8), to: folder.certificateFile(generation: generation), mode: 0o644)
        state.certificateSerial = serial
        state.certificateNotAfter = notAfter
        state.tlsGeneration = key.generation
        state.state = "enrolled"
        try folder.save(state)
        if let pem = key.pem { try folder.write(Data(pem.utf8), to: folder.keyFile, mode: 0o600) }
        try folder.write(Data(chain.utf8), to: folder.certificateFile, mode: 0o644)
        folder.removeGenerations(before: generation - 1)
    }

    /// The certificate chain in use and its key, for TLS.
    public func currentIdentity(_ state: AgentState) throws -> DeviceClient.TLSClientIdentity {
        let generation = state.tlsGeneration
        let chain = try NIOSSLCertificate.fromPEMFile(
            folder.existing(folder.certificateFile(generation: generation), or: folder.certificateFile))
        let keyPEM: String
        switch credential {
        case .ddk(let attributes, let seed):
            keyPEM =
                DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed)
                .tlsKey(generation: UInt64(state.tlsGeneration)).pemRepresentation
        case .x509, .symmetricKey:
            let keyFile = folder.existing(folder.keyFile(generation: generation), or: folder.keyFile)
            guard let data = FileManager.default.contents(atPath: keyFile) else {
                throw AgentError("the device key \(keyFile) is missing")
            }
            keyPEM = String(decoding: data, as: UTF8.self)
        }
        // A key that does not belong to the certificate fails deep in TLS (failedToLoadPrivateKey); say why.
        if let leaf = chain.first, let der = try? leaf.toDERBytes(),
            let certificate = try? Certificate(derEncoded: der),
            let key = try? Certificate.PrivateKey(pemEncoded: keyPEM), key.publicKey != certificate.publicKey
        {
            switch credential {
            case .ddk:
                throw AgentError(
                    "the key derived from this device's attributes does not match its certificate: run with the "
                        + "attributes it enrolled with (the same --attribute NAME=VALUE options, or --attributes linux "
                        + "on the device itself; --seed if it enrolled with one)", code: "attributesChanged")
            case .x509, .symmetricKey:
                throw AgentError(
                    "the key in \(folder.path) does not match the certificate there: is --state-dir the folder "
                        + "this device enrolled with?", code: "keyMismatch")
            }
        }
        return .init(
            certificateChain: chain, privateKey: try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
    }

    /// A status session.
    public func status() async throws -> DeviceAPI.StatusResponse {
        let challenge = try await client.challenge(deviceID)
        guard challenge.action != "register" else { throw AgentError("not registered yet; run enroll first") }
        let attestation = try await attest(challenge, payload: DeviceAPI.statusPayload)
        do {
            let status = try await client.status(
                .init(deviceId: deviceID, challengeId: challenge.challengeId, attestation: attestation))
            if case .ddk = credential { try confirmSession(epoch: challenge.epoch + 1) }
            return status
        } catch let error as DeviceClient.APIError where error.code == "forkProofRequired" {
            try await sendForkProof()
            throw error
        }
    }

    // MARK: DDK ratchet

    /// Records that the session was answered: Keygate is at `epoch`, with the pending secret.
    func confirmSession(epoch: Int) throws {
        guard var chain = folder.loadChain() else { return }
        chain.confirm(epoch: epoch)
        try folder.saveChain(chain)
    }

    /// The secret of the epoch the challenge names, following Keygate when a session's answer was lost
    /// (Keygate moved with the pending secret); throws when another party moved Keygate past what this
    /// device can prove (after sending the fork proof) or when the chain is missing.
    func secretForChallenge(_ challenge: DeviceAPI.Challenge, chain: inout DDKChain?) async throws -> [UInt8]? {
        guard var current = chain else {
            // A group that does not take DDK: Keygate says so (attestationMethodNotAllowed).
            if !challenge.methods.contains(.ddk) { return nil }
            throw AgentError(
                "this device is registered with Keygate but its DDK state is missing (\(folder.chainFile)): "
                    + "without it the device cannot prove its key chain. If the device was re-flashed, an operator "
                    + "must re-authorize it with `keygate device reauthorize \(deviceID) --allow-reregistration`; "
                    + "otherwise run with the --state-dir it enrolled with", code: "ddkStateMissing")
        }
        defer { chain = current }
        let decode = { (text: String?) in text.flatMap(Base64URL.decode) }
        if challenge.epoch == current.epoch { return decode(current.secret) }
        if challenge.epoch == current.epoch + 1, current.pendingSecret != nil {
            // The last session reached Keygate but its answer did not reach this device.
            current.confirm(epoch: challenge.epoch)
            try folder.saveChain(current)
            return decode(current.secret)
        }
        if challenge.epoch > current.epoch, current.isLegacy {
            // A device from before the ratchet: its keys come from the attributes alone.
            return nil
        }
        if challenge.epoch > current.epoch {
            // Another party ran sessions with this identity since this device's last one.
            try await sendForkProof()
            throw AgentError(
                "Keygate is at epoch \(challenge.epoch) but this device's last session left it at \(current.epoch): "
                    + "another party has used this identity", code: "forkProofRequired")
        }
        throw AgentError(
            "Keygate is at epoch \(challenge.epoch), behind this device's \(current.epoch): is --server the Keygate "
                + "this device enrolled with?", code: "epochBehind")
    }

    /// After `forkProofRequired`, or when Keygate is past this device's epoch: proves the epoch of this
    /// device's last session with its key and claims its own next key; Keygate decides clone or failure.
    private func sendForkProof() async throws {
        guard case .ddk(let attributes, let seed) = credential, let chain = folder.loadChain() else { return }
        let identity = DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed)
        let challenge = try await client.challenge(deviceID)
        let proof: DeviceAPI.ForkProofRequest
        if chain.isLegacy {
            // Before the ratchet: every key comes from the attributes.
            proof = try identity.forkProof(challenge, proofEpoch: max(min(chain.epoch, challenge.epoch - 1), 0))
        } else {
            let claimed = chain.pendingSecret.flatMap(Base64URL.decode) ?? DDKIdentity.newSessionSecret()
            proof = try identity.forkProof(
                challenge, proofEpoch: chain.epoch, secret: chain.secret.flatMap(Base64URL.decode),
                claimedSecret: claimed)
        }
        try await client.forkProof(proof)
    }

    /// Attests by the device's method; a DDK session draws the next epoch's secret and keeps it (as
    /// pending) before anything is sent.
    func attest(_ challenge: DeviceAPI.Challenge, payload: [UInt8]) async throws -> DeviceAPI.Attestation {
        switch credential {
        case .ddk(let attributes, let seed):
            var chain = folder.loadChain()
            let secret = try await secretForChallenge(challenge, chain: &chain)
            let next = DDKIdentity.newSessionSecret()
            if var updated = chain {
                updated.pendingSecret = Base64URL.encode(next)
                try folder.saveChain(updated)
            }
            return try DDKIdentity(deviceID: deviceID, attributes: attributes, seed: seed).authenticate(
                challenge, payload: payload, secret: secret, nextSecret: next)
        case .x509(let chainPEM, let keyPEM):
            let key = try BootstrapKey(pem: keyPEM)
            return try BootstrapAttestation.attest(
                challenge, deviceID: deviceID, chainPEM: chainPEM, payload: payload, sign: key.sign)
        case .symmetricKey(let deviceKey):
            return try SymmetricKeyAttestation.attest(
                challenge, deviceID: deviceID, deviceKey: deviceKey, payload: payload)
        }
    }

    /// A CSR for the key, CN = the device ID.
    func makeCSR(_ key: Certificate.PrivateKey) throws -> String {
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
