import Foundation

/// What `keygate sandbox inspect` lists: enrollments, registrations, hub devices with status,
/// connection and telemetry counts.
public struct SandboxInventory: Codable, Sendable {
    public struct Enrollment: Codable, Sendable {
        public var id: String
        public var kind: String
        public var attestation: String
        public var provisioningStatus: String
        /// X.509 individual enrollments: the SHA-256 thumbprints (upper-case hex) of the primary and
        /// secondary client certificates (a renewal shows as new primary, previous secondary).
        public var primaryThumbprint: String?
        public var secondaryThumbprint: String?
    }

    public struct Registration: Codable, Sendable {
        public var registrationId: String
        public var status: String
        public var assignedHub: String?
        public var deviceId: String?
        public var enrollmentGroupId: String?
    }

    public struct HubDevice: Codable, Sendable {
        public var deviceId: String
        public var status: String
        public var authentication: String
        public var connected: Bool
        public var telemetryMessages: Int
    }

    public var idScope: String
    public var hubHostName: String
    public var enrollments: [Enrollment]
    public var registrations: [Registration]
    public var devices: [HubDevice]

    static func make(store: SandboxStore, hub: HubRegistry) async -> SandboxInventory {
        let state = await store.state
        let dps = state.dps
        let hubState = state.hub
        let counts = hub.telemetryCounts
        func enrollment(_ id: String, _ record: JSONValue, kind: String) -> Enrollment {
            func thumbprint(_ which: String) -> String? {
                record[path: "attestation", "x509", "clientCertificates", which, "info", "sha256Thumbprint"]?.string
            }
            return Enrollment(
                id: id, kind: kind, attestation: record[path: "attestation", "type"]?.string ?? "",
                provisioningStatus: record["provisioningStatus"]?.string ?? "",
                primaryThumbprint: thumbprint("primary"), secondaryThumbprint: thumbprint("secondary"))
        }
        return SandboxInventory(
            idScope: dps.idScope, hubHostName: hubState.hostName,
            enrollments: dps.enrollments.sorted { $0.key < $1.key }.map {
                enrollment($0.key, $0.value, kind: "individual")
            }
                + dps.groups.sorted { $0.key < $1.key }.map { enrollment($0.key, $0.value, kind: "group") },
            registrations: dps.registrations.sorted { $0.key < $1.key }.map { id, record in
                Registration(
                    registrationId: id, status: record["status"]?.string ?? "",
                    assignedHub: record["assignedHub"]?.string,
                    deviceId: record["deviceId"]?.string,
                    enrollmentGroupId: record[path: "x509", "enrollmentGroupId"]?.string)
            },
            devices: hubState.devices.sorted { $0.key < $1.key }.map { id, record in
                HubDevice(
                    deviceId: id, status: record["status"]?.string ?? "",
                    authentication: record[path: "authentication", "type"]?.string ?? "",
                    connected: hub.isConnected(id),
                    telemetryMessages: counts[id] ?? 0)
            })
    }
}
