import Foundation
import Synchronization
import X509

/// Device registration, shared by the HTTPS and MQTT device APIs: find the enrollment the client
/// certificate proves (individual first, then groups by the issuing CA), honour its
/// `provisioningStatus`, allocate the hub, create or update the device there, record the state.
final class DPSRegistrar: Sendable {
    let store: SandboxStore
    let hub: HubRegistry

    /// An enrollment a certificate proves.
    struct Match: Sendable {
        enum Source: Sendable, Equatable {
            case individual
            case group(String)
        }
        var source: Source
        var enrollment: JSONValue
        var leaf: CertificateFacts
    }

    private struct Operation {
        var registrationID: String
        var result: JSONValue
        var created: Date
    }

    /// Operations kept for ten minutes, as DPS keeps them for polling. Expired ones leave from the
    /// front of the insertion order, so recording one costs the same with 100 or 100,000 kept (a
    /// sweep of the whole table per registration made the sandbox's cost grow with the fleet).
    private struct Operations {
        var byID: [String: Operation] = [:]
        var order: [(id: String, created: Date)] = []
        var head = 0

        mutating func record(_ id: String, _ operation: Operation, keepFor: TimeInterval) {
            let cutoff = operation.created.addingTimeInterval(-keepFor)
            while head < order.count, order[head].created <= cutoff {
                byID[order[head].id] = nil
                head += 1
            }
            if head > 1024, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
            byID[id] = operation
            order.append((id, operation.created))
        }
    }

    private let operations = Mutex(Operations())

    init(store: SandboxStore, hub: HubRegistry) {
        self.store = store
        self.hub = hub
    }

    /// The enrollment `leafDER` proves for `registrationID`, or why none does.
    func match(registrationID: String, leafDER: [UInt8]?) async -> Result<Match, Refusal> {
        guard let leafDER, let leaf = CertificateFacts(der: leafDER) else {
            return .failure(Refusal("a client certificate is required"))
        }
        guard leaf.commonName == registrationID else {
            return .failure(Refusal("the certificate's CN must be the registration ID"))
        }
        guard CertificateFacts.isCurrent(leaf.certificate) else {
            return .failure(Refusal("the certificate is expired or not yet valid"))
        }
        let (individual, groups) = await store.read {
            ($0.dps.enrollments[registrationID], $0.dps.groups.sorted(by: { $0.key < $1.key }))
        }
        if let enrollment = individual, enrollment[path: "attestation", "type"]?.string == "x509" {
            let thumbprints = ["primary", "secondary"].compactMap {
                enrollment[path: "attestation", "x509", "clientCertificates", $0, "info", "sha256Thumbprint"]?.string
            }
            guard thumbprints.contains(leaf.sha256Thumbprint) else {
                return .failure(Refusal("the certificate is not the enrollment's"))
            }
            return .success(Match(source: .individual, enrollment: enrollment, leaf: leaf))
        }
        for (id, group) in groups
        where group[path: "attestation", "type"]?.string == "x509" {
            let issued = ["primary", "secondary"].contains { which in
                guard let pem = group[path: "attestation", "x509", "signingCertificates", which, "certificate"]?.string
                else { return false }
                return CertificateFacts(text: pem)?.issued(leaf.certificate) ?? false
            }
            if issued { return .success(Match(source: .group(id), enrollment: group, leaf: leaf)) }
        }
        return .failure(Refusal("no enrollment matches the certificate"))
    }

    /// Registers a matched device and returns the operation ID; the outcome waits for a poll.
    func register(_ match: Match, registrationID: String) async throws -> String {
        let operationID = "4.\(UInt64.random(in: 1..<UInt64.max)).\(UUID().uuidString.lowercased())"
        let now = ISO8601DateFormatter().string(from: Date())
        let (result, deviceID, disabled) = try await store.update { state -> (JSONValue, String, Bool) in
            let previous = state.dps.registrations[registrationID]
            var registration: JSONValue = .object([
                "registrationId": .string(registrationID),
                "createdDateTimeUtc": previous?["createdDateTimeUtc"] ?? .string(now),
                "lastUpdatedDateTimeUtc": .string(now),
                "etag": .string(DPSServiceRoutes.newETag()),
            ])
            var x509: JSONValue = .object(["certificateInfo": match.leaf.info])
            if case .group(let id) = match.source { x509["enrollmentGroupId"] = .string(id) }
            registration["x509"] = x509
            let deviceID = match.enrollment["deviceId"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? registrationID
            let status: String
            // IoT Central's `enabled: false` blocks the device whichever enrollment it comes through.
            let blockedByCentral = state.central.devices[registrationID]?["enabled"]?.bool == false
            if match.enrollment["provisioningStatus"]?.string == "disabled" || blockedByCentral {
                status = "disabled"
                registration["status"] = .string("disabled")
                registration["errorCode"] = .number(401_006)
                registration["errorMessage"] = .string("The enrollment is disabled.")
            } else {
                status = "assigned"
                registration["status"] = .string("assigned")
                registration["substatus"] = .string(
                    previous?["status"]?.string == "assigned" ? "reprovisionedToInitialAssignment" : "initialAssignment"
                )
                registration["assignedHub"] = .string(state.hub.hostName)
                registration["deviceId"] = .string(deviceID)
                let existing = state.hub.devices[deviceID]
                let identity = Self.identity(for: match, deviceID: deviceID, existing: existing, hub: &state.hub)
                state.hub.devices[deviceID] = HubState.prepareDevice(identity, id: deviceID, existing: existing)
            }
            state.dps.registrations[registrationID] = registration
            if match.source == .individual, state.dps.enrollments[registrationID] != nil {
                state.dps.enrollments[registrationID]?["registrationState"] = registration
            }
            let result: JSONValue = .object([
                "operationId": .string(operationID), "status": .string(status), "registrationState": registration,
            ])
            return (result, deviceID, status == "disabled")
        }
        _ = deviceID
        _ = disabled
        operations.withLock { operations in
            operations.record(
                operationID, Operation(registrationID: registrationID, result: result, created: Date()), keepFor: 600)
        }
        return operationID
    }

    /// The status of an operation of `registrationID`.
    func operation(_ operationID: String, registrationID: String) -> JSONValue? {
        operations.withLock { operations in
            guard let operation = operations.byID[operationID], operation.registrationID == registrationID else {
                return nil
            }
            return operation.result
        }
    }

    /// The hub identity DPS writes: `selfSigned` with the enrollment's certificate thumbprints for an
    /// individual enrollment, and with the registering device's own certificate thumbprint for a
    /// group (as Azure does: DPS uploads no CA to the hub).
    private static func identity(for match: Match, deviceID: String, existing: JSONValue?, hub: inout HubState)
        -> JSONValue
    {
        var device = existing ?? .object(["deviceId": .string(deviceID), "status": .string("enabled")])
        switch match.source {
        case .individual:
            var thumbprints: [String: JSONValue] = [:]
            for (which, key) in [("primary", "primaryThumbprint"), ("secondary", "secondaryThumbprint")] {
                let info = match.enrollment[path: "attestation", "x509", "clientCertificates", which, "info"]
                thumbprints[key] = info?["sha1Thumbprint"] ?? .null
            }
            device["authentication"] = .object(["type": .string("selfSigned"), "x509Thumbprint": .object(thumbprints)])
        case .group:
            device["authentication"] = .object([
                "type": .string("selfSigned"),
                "x509Thumbprint": .object([
                    "primaryThumbprint": .string(match.leaf.sha1Thumbprint), "secondaryThumbprint": .null,
                ]),
            ])
        }
        return device
    }
}

/// Why a registration or connection is refused (the caller sees 401 or CONNACK 5).
struct Refusal: Error, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
