public import Foundation
import KeygatePKI

/// The JSON bodies of `/device/v1`, shared by the server and `keygate-agent`.
/// Binary values are base64url without padding; public keys are SPKI DER; signatures DER.
public enum DeviceAPI {
    /// `POST /device/v1/challenge`
    public struct ChallengeRequest: Codable, Sendable {
        public var deviceId: String
        public init(deviceId: String) { self.deviceId = deviceId }
    }

    public struct Challenge: Codable, Sendable {
        public var challengeId: String
        public var nonce: String
        /// For DDK: the epoch whose key must sign (0 means: register first).
        public var epoch: Int
        public var audience: String
        public var expiresAt: Date
        /// `register` (DDK device not registered yet) or `authenticate`.
        public var action: String
        /// The attestation methods the device's group accepts.
        public var methods: [AttestationMethod]

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
        public var deviceId: String
        public var challengeId: String
        public var publicKey: String
        public var nextPublicKey: String
        public var signature: String
        public var enrollmentToken: String?

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
        public var method: AttestationMethod
        /// DDK: the epoch signed for and `P_{e+1}`.
        public var epoch: Int?
        public var nextPublicKey: String?
        /// DDK and x509: the signature.
        public var signature: String?
        /// x509: the bootstrap chain, leaf first, PEM.
        public var certificateChain: [String]?
        /// symmetric-key: the HMAC.
        public var mac: String?

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
        public var deviceId: String
        public var challengeId: String
        /// PEM; its DER is the payload the attestation binds.
        public var csr: String
        public var attestation: Attestation
        public var enrollmentToken: String?

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

    public struct EnrollResponse: Codable, Sendable {
        /// `enrolled` (certificate below) or `pendingApproval` (ask again later).
        public var status: String
        public var serial: String?
        /// Leaf, issuing CA, root; PEM.
        public var certificateChain: String?
        public var notAfter: Date?
        /// Where to register in Azure, when the device's group has a connector.
        public var provisioning: Provisioning?

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
        public var registrationId: String
        /// `true` once the enrollment reached DPS or IoT Central; register only then.
        public var confirmed: Bool
        /// The connector's error while it keeps retrying, for the device's log.
        public var lastError: String?

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
        public var deviceId: String
        public var challengeId: String
        public var proofEpoch: Int
        public var claimedPublicKey: String
        public var signature: String
    }

    /// `POST /device/v1/status`: a session that only reads.
    public struct StatusRequest: Codable, Sendable {
        public var deviceId: String
        public var challengeId: String
        public var attestation: Attestation

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

        public init(deviceId: String? = nil, csr: String) {
            self.deviceId = deviceId
            self.csr = csr
        }
    }

    /// `GET /device/v1/renewal` (mTLS): when the device should renew its certificate.
    public struct RenewalInfo: Codable, Sendable, Hashable {
        public var deviceId: String
        public var serial: String
        public var notAfter: Date
        /// Renew at or after this time (the group's window with per-certificate jitter, or the
        /// device's slot in a rotation campaign, whichever is first).
        public var renewAfter: Date
        /// `window` or `rotation`.
        public var reason: String
        /// Where the device registers, and whether this certificate's enrollment reached Azure.
        public var provisioning: Provisioning?

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

    public struct StatusResponse: Codable, Sendable {
        public var deviceId: String
        public var state: String
        public var group: String
        public var epoch: Int
        public var certificateSerial: String?
        public var certificateNotAfter: Date?
        public var provisioning: Provisioning?

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
        public var code: String
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
