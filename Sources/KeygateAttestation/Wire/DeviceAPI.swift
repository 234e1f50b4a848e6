public import Foundation
import KeygatePKI

/// The JSON bodies of `/device/v1`, shared by the server and `keygate-agent`.
/// Binary values are base64url without padding; public keys are SPKI DER; signatures DER.
public enum DeviceAPI {
    /// `POST /device/v1/challenge`
    public struct ChallengeRequest: Codable, Sendable {
        /// The device asking; must be a valid device ID on the allowlist.
        public var deviceId: String
        /// Creates the request.
        public init(deviceId: String) { self.deviceId = deviceId }
    }

    /// The answer to `POST /device/v1/challenge`: what the device's next attested call must sign.
    public struct Challenge: Codable, Sendable {
        /// Names the challenge in the next request; single use, bound to this device.
        public var challengeId: String
        /// 32 random bytes, base64url; signed (or MACed) into the attestation.
        public var nonce: String
        /// For DDK: the epoch whose key must sign (0 means: register first).
        public var epoch: Int
        /// The server's identity (`keygate:` and the issuing CA's key identifier in hex), bound into every message.
        public var audience: String
        /// After this time the challenge is refused (60 seconds after issue by default).
        public var expiresAt: Date
        /// `register` (DDK device not registered yet) or `authenticate`.
        public var action: String
        /// The attestation methods the device's group accepts.
        public var methods: [AttestationMethod]

        /// Creates a challenge.
        public init(
            challengeId: String, nonce: String, epoch: Int, audience: String, expiresAt: Date, action: String,
            methods: [AttestationMethod]
        ) {
            self.challengeId = challengeId
            self.nonce = nonce
            self.epoch = epoch
            self.audience = audience
            self.expiresAt = expiresAt
            self.action = action
            self.methods = methods
        }

        /// The decoded ``nonce``; throws `AttestationError.malformed` when it is not base64url.
        public var nonceBytes: [UInt8] {
            get throws {
                guard let bytes = Base64URL.decode(nonce) else {
                    throw AttestationError.malformed("the nonce is not base64url")
                }
                return bytes
            }
        }
    }

    /// `POST /device/v1/register` (DDK session 0)
    public struct RegisterRequest: Codable, Sendable {
        /// The device registering.
        public var deviceId: String
        /// The challenge this registration answers (its ``Challenge/epoch`` is 0).
        public var challengeId: String
        /// `P_0`, the epoch-0 public key (SPKI DER, base64url); must match the allowlist's pinned key if set.
        public var publicKey: String
        /// `P_1`, the key the next session signs with (SPKI DER, base64url).
        public var nextPublicKey: String
        /// `K_0`'s ECDSA signature (DER, base64url) over the registration message.
        public var signature: String
        /// The one-time enrollment token, when the allowlist entry requires one.
        public var enrollmentToken: String?

        /// Creates the request.
        public init(
            deviceId: String, challengeId: String, publicKey: String, nextPublicKey: String, signature: String,
            enrollmentToken: String?
        ) {
            self.deviceId = deviceId
            self.challengeId = challengeId
            self.publicKey = publicKey
            self.nextPublicKey = nextPublicKey
            self.signature = signature
            self.enrollmentToken = enrollmentToken
        }
    }

    /// A proof of identity for one session, by one method.
    public struct Attestation: Codable, Sendable {
        /// The method used; it must be one the device's group accepts.
        public var method: AttestationMethod
        /// DDK: the epoch signed for and `P_{e+1}`.
        public var epoch: Int?
        /// DDK: `P_{e+1}` (SPKI DER, base64url), which becomes the device's key for the next session.
        public var nextPublicKey: String?
        /// DDK and x509: the signature.
        public var signature: String?
        /// x509: the bootstrap chain, leaf first, PEM.
        public var certificateChain: [String]?
        /// symmetric-key: the HMAC.
        public var mac: String?

        /// Creates an attestation; set only the fields of `method`.
        public init(
            method: AttestationMethod, epoch: Int? = nil, nextPublicKey: String? = nil, signature: String? = nil,
            certificateChain: [String]? = nil, mac: String? = nil
        ) {
            self.method = method
            self.epoch = epoch
            self.nextPublicKey = nextPublicKey
            self.signature = signature
            self.certificateChain = certificateChain
            self.mac = mac
        }
    }

    /// `POST /device/v1/enroll`: an attested CSR.
    public struct EnrollRequest: Codable, Sendable {
        /// The device enrolling.
        public var deviceId: String
        /// The challenge the attestation signs.
        public var challengeId: String
        /// PEM; its DER is the payload the attestation binds.
        public var csr: String
        /// The proof of identity; its payload is the CSR's DER, so the CSR cannot be swapped.
        public var attestation: Attestation
        /// The one-time enrollment token, when the allowlist entry requires one and the device is still `allowlisted`.
        public var enrollmentToken: String?

        /// Creates the request.
        public init(
            deviceId: String, challengeId: String, csr: String, attestation: Attestation, enrollmentToken: String? = nil
        ) {
            self.deviceId = deviceId
            self.challengeId = challengeId
            self.csr = csr
            self.attestation = attestation
            self.enrollmentToken = enrollmentToken
        }
    }

    /// The answer to enroll: a certificate, or a wait for an operator's approval.
    public struct EnrollResponse: Codable, Sendable {
        /// `enrolled` (certificate below) or `pendingApproval` (ask again later).
        public var status: String
        /// The new certificate's serial number (lower-case hex); `nil` while pending approval.
        public var serial: String?
        /// Leaf, issuing CA, root; PEM.
        public var certificateChain: String?
        /// When the new certificate expires; `nil` while pending approval.
        public var notAfter: Date?
        /// Where to register in Azure, when the device's group has a connector.
        public var provisioning: Provisioning?

        /// Creates a response; only `status` is set while approval is pending.
        public init(
            status: String, serial: String? = nil, certificateChain: String? = nil, notAfter: Date? = nil,
            provisioning: Provisioning? = nil
        ) {
            self.status = status
            self.serial = serial
            self.certificateChain = certificateChain
            self.notAfter = notAfter
            self.provisioning = provisioning
        }
    }

    /// How a device reaches DPS, and whether its enrollment there is in place yet.
    public struct Provisioning: Codable, Sendable, Hashable {
        /// The DPS device endpoint host (`global.azure-devices-provisioning.net` in Azure).
        public var globalEndpoint: String
        /// `nil` until the connector knows it (IoT Central tells it with the first device).
        public var idScope: String?
        /// The DPS registration ID: the device ID.
        public var registrationId: String
        /// `true` once the enrollment reached DPS or IoT Central; register only then.
        public var confirmed: Bool
        /// The connector's error while it keeps retrying, for the device's log.
        public var lastError: String?

        /// Creates provisioning information.
        public init(
            globalEndpoint: String, idScope: String?, registrationId: String, confirmed: Bool, lastError: String? = nil
        ) {
            self.globalEndpoint = globalEndpoint
            self.idScope = idScope
            self.registrationId = registrationId
            self.confirmed = confirmed
            self.lastError = lastError
        }
    }

    /// `POST /device/v1/fork-proof`
    public struct ForkProofRequest: Codable, Sendable {
        /// The device proving it did not fork.
        public var deviceId: String
        /// A fresh challenge, signed with `K_k`.
        public var challengeId: String
        /// `k`: the last epoch the device completed successfully.
        public var proofEpoch: Int
        /// The `P_{k+1}` the device announced at epoch `k` (SPKI DER, base64url).
        public var claimedPublicKey: String
        /// `K_k`'s ECDSA signature (DER, base64url) over the fork-proof message.
        public var signature: String
    }

    /// `POST /device/v1/status`: a session that only reads.
    public struct StatusRequest: Codable, Sendable {
        /// The device asking.
        public var deviceId: String
        /// The challenge the attestation signs.
        public var challengeId: String
        /// The proof of identity, over ``DeviceAPI/statusPayload``.
        public var attestation: Attestation

        /// Creates the request.
        public init(deviceId: String, challengeId: String, attestation: Attestation) {
            self.deviceId = deviceId
            self.challengeId = challengeId
            self.attestation = attestation
        }
    }

    /// `POST /device/v1/renew`, authenticated by the device's current certificate (mTLS).
    public struct RenewRequest: Codable, Sendable {
        /// Optional: when given, it must be the device the client certificate names.
        public var deviceId: String?
        /// PEM CERTIFICATE REQUEST, for a new key unless the group allows reuse.
        public var csr: String

        /// Creates the request.
        public init(deviceId: String? = nil, csr: String) {
            self.deviceId = deviceId
            self.csr = csr
        }
    }

    /// `GET /device/v1/renewal` (mTLS): when the device should renew its certificate.
    public struct RenewalInfo: Codable, Sendable, Hashable {
        /// The device the client certificate names.
        public var deviceId: String
        /// The serial (lower-case hex) of the client certificate, which must be the device's newest.
        public var serial: String
        /// When that certificate expires.
        public var notAfter: Date
        /// Renew at or after this time (the group's window with per-certificate jitter, or the
        /// device's slot in a rotation campaign, whichever is first).
        public var renewAfter: Date
        /// `window` or `rotation`.
        public var reason: String
        /// Where the device registers, and whether this certificate's enrollment reached Azure.
        public var provisioning: Provisioning?

        /// Creates the answer.
        public init(
            deviceId: String, serial: String, notAfter: Date, renewAfter: Date, reason: String,
            provisioning: Provisioning? = nil
        ) {
            self.provisioning = provisioning
            self.deviceId = deviceId
            self.serial = serial
            self.notAfter = notAfter
            self.renewAfter = renewAfter
            self.reason = reason
        }
    }

    /// The answer to `POST /device/v1/status`: the device as Keygate sees it.
    public struct StatusResponse: Codable, Sendable {
        /// The device's ID.
        public var deviceId: String
        /// The lifecycle state (`registered`, `enrolled`, `quarantined`...).
        public var state: String
        /// The name of the device's group.
        public var group: String
        /// The DDK epoch the next session must sign with.
        public var epoch: Int
        /// The serial of the device's newest active certificate; `nil` when it has none.
        public var certificateSerial: String?
        /// When that certificate expires; `nil` when there is none.
        public var certificateNotAfter: Date?
        /// Where to register in Azure; `nil` when the group has no connector.
        public var provisioning: Provisioning?

        /// Creates the answer.
        public init(
            deviceId: String, state: String, group: String, epoch: Int, certificateSerial: String?,
            certificateNotAfter: Date?, provisioning: Provisioning? = nil
        ) {
            self.provisioning = provisioning
            self.deviceId = deviceId
            self.state = state
            self.group = group
            self.epoch = epoch
            self.certificateSerial = certificateSerial
            self.certificateNotAfter = certificateNotAfter
        }
    }

    /// Every error: a stable code and a message.
    public struct ErrorBody: Codable, Sendable {
        /// The stable error code, such as `challengeInvalid`.
        public var code: String
        /// A sentence for a human.
        public var message: String
    }

    /// The payload an enroll attestation binds: the CSR's DER.
    public static func payload(csrPEM: String) -> [UInt8] {
        let lines = csrPEM.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }
        return Array(Data(base64Encoded: lines.joined()) ?? Data())
    }
}

extension DeviceAPI {
    /// What a status session binds (it carries no request payload).
    public static let statusPayload = Array("keygate-status-v1".utf8)

    /// The DER of a PEM CSR, or `nil` when the text is not one.
    public static func payloadIfPEM(_ text: String) -> [UInt8]? {
        guard
            text.contains("-----BEGIN CERTIFICATE REQUEST-----")
                || text.contains("-----BEGIN NEW CERTIFICATE REQUEST-----")
        else { return nil }
        let bytes = payload(csrPEM: text)
        return bytes.isEmpty ? nil : bytes
    }
}
