import Crypto
import Foundation

/// The Device Provisioning Service's state: policies, enrollments, groups, registrations.
struct DPSState: Codable, Sendable {
    var idScope: String
    var policies: [SharedAccessPolicy]
    /// Individual enrollments by registration ID, as JSON.
    var enrollments: [String: JSONValue] = [:]
    /// Enrollment groups by group ID, as JSON.
    var groups: [String: JSONValue] = [:]
    /// Device registration states by registration ID, as JSON.
    var registrations: [String: JSONValue] = [:]
    /// How many times each individual enrollment was created or replaced (the sandbox's own count, never
    /// part of an answer): tests check that a change reached DPS once.
    var enrollmentWrites: [String: Int]? = nil

    static let allRights = [
        "ServiceConfig", "EnrollmentRead", "EnrollmentWrite", "RegistrationStatusRead", "RegistrationStatusWrite",
    ]

    static func fresh() -> DPSState {
        let scope =
            "0ne"
            + Data(SymmetricKey(size: .init(bitCount: 32)).withUnsafeBytes { Array($0) })
            .map { String(format: "%02X", $0) }.joined()
        return DPSState(
            idScope: scope,
            policies: [
                .generate(name: "provisioningserviceowner", rights: allRights),
                .generate(name: "enrollmentread", rights: ["EnrollmentRead", "RegistrationStatusRead"]),
            ])
    }
}

/// One IoT Hub: its policies and device identities.
struct HubState: Codable, Sendable {
    var hostName: String
    var policies: [SharedAccessPolicy]
    /// Device identities by device ID, as JSON.
    var devices: [String: JSONValue] = [:]
    /// CA certificates (PEM) the hub trusts for `certificateAuthority` devices (DPS adds group CAs).
    var certificateAuthorities: [String] = []

    static func fresh(hostName: String) -> HubState {
        HubState(
            hostName: hostName,
            policies: [
                .generate(
                    name: "iothubowner", rights: ["RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"]),
                .generate(name: "registryRead", rights: ["RegistryRead"]),
            ])
    }
}

/// The IoT Central application: API token and its devices (a facade over DPS and the hub).
struct CentralState: Codable, Sendable {
    var appName: String
    /// The API token's secret part; tokens are `SharedAccessSignature sr=<app>&sig=…&skn=<name>&se=<ms>`.
    var apiTokenKey: String
    var apiTokenName: String
    var devices: [String: JSONValue] = [:]
    var groups: [String: JSONValue] = [:]

    static func fresh() -> CentralState {
        CentralState(
            appName: "sandbox-central",
            apiTokenKey: Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).base64EncodedString(),
            apiTokenName: "keygate")
    }
}
