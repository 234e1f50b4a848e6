import Foundation

/// What `keygate sandbox inspect` lists: enrollments, registrations, hub devices with status,
/// connection and telemetry counts.
public struct SandboxInventory: Codable, Sendable {
    /// A DPS enrollment, individual or group.
    public struct Enrollment: Codable, Sendable {
        /// Its registration ID or group ID.
        public var id: String
        /// `individual` or `group`.
        public var kind: String
        /// `x509`, `symmetricKey` or `tpm`.
        public var attestation: String
        /// `enabled` or `disabled`.
        public var provisioningStatus: String
        /// X.509 individual enrollments: the SHA-256 thumbprints (upper-case hex) of the primary and
        /// secondary client certificates (a renewal shows as new primary, previous secondary).
        public var primaryThumbprint: String?
        /// The secondary certificate's SHA-256 thumbprint, if any.
        public var secondaryThumbprint: String?
        /// Individual enrollments: how many times it was created or replaced since the sandbox began.
        public var writes: Int?
    }

    /// A device's registration state.
    public struct Registration: Codable, Sendable {
        /// The registration ID.
        public var registrationId: String
        /// `assigned`, `failed` or `disabled`.
        public var status: String
        /// The hub DPS assigned, when assigned.
        public var assignedHub: String?
        /// The hub device ID, when assigned.
        public var deviceId: String?
        /// The group it registered through, if any.
        public var enrollmentGroupId: String?
    }

    /// A device identity in the hub.
    public struct HubDevice: Codable, Sendable {
        /// The device ID.
        public var deviceId: String
        /// `enabled` or `disabled`.
        public var status: String
        /// `selfSigned`, `certificateAuthority` or `sas`.
        public var authentication: String
        /// Whether it has a live MQTT connection.
        public var connected: Bool
        /// Telemetry messages received since the sandbox started.
        public var telemetryMessages: Int
    }

    /// The DPS ID scope.
    public var idScope: String
    /// The hub's host name.
    public var hubHostName: String
    /// Every enrollment.
    public var enrollments: [Enrollment]
    /// Every registration state.
    public var registrations: [Registration]
    /// Every hub device identity.
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
                primaryThumbprint: thumbprint("primary"), secondaryThumbprint: thumbprint("secondary"),
                writes: kind == "individual" ? dps.enrollmentWrites?[id] ?? 0 : nil)
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
