import Foundation
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateStore

/// What a device needs to reach Azure: its group's connector, where to register, and whether its
/// enrollment has reached the service; and the outbox items a change in Keygate sends to Azure.
struct ProvisioningService: Sendable {
    let store: any ServerStore

    /// The group's connector, if it names one.
    func connector(of group: Group) async throws -> Connector? {
        guard let name = group.policy.connector else { return nil }
        guard let connector = try await store.connector(named: name) else {
            throw KeygateError(
                .connectorNotFound, "group \(group.name) names the connector \(name), which does not exist")
        }
        return connector
    }

    /// The outbox item for a change in Azure, when the device's group has a connector.
    func azureChange(_ action: OutboxItem.Action, deviceID: String, group: Group) async throws -> [OutboxItem] {
        guard let connector = try await connector(of: group) else { return [] }
        return [OutboxItem(connector: connector.name, deviceID: deviceID, action: action)]
    }

    /// Where a device that was just enrolled registers: its enrollment item is queued, not delivered.
    func justQueued(deviceID: String, connector: Connector?) -> DeviceAPI.Provisioning? {
        connector.map {
            DeviceAPI.Provisioning(
                globalEndpoint: $0.settings.globalEndpoint, idScope: $0.settings.idScope, registrationId: deviceID,
                confirmed: false, lastError: nil)
        }
    }

    /// Where the device registers and whether its enrollment reached Azure, as the store says now.
    func status(of deviceID: String, connector: Connector?) async throws -> DeviceAPI.Provisioning? {
        guard let connector else { return nil }
        let confirmed = try await store.enrollmentConfirmed(deviceID: deviceID) ?? false
        let lastError =
            confirmed ? nil : try await store.outboxItems(state: nil, deviceID: deviceID, limit: 1).first?.lastError
        return DeviceAPI.Provisioning(
            globalEndpoint: connector.settings.globalEndpoint, idScope: connector.settings.idScope,
            registrationId: deviceID, confirmed: confirmed, lastError: lastError)
    }

    /// A device's state as the device API reports it.
    func deviceStatus(_ device: Device, group: Group) async throws -> DeviceAPI.StatusResponse {
        let active = try await store.certificates(matching: .init(status: .active, deviceID: device.id, limit: 1000))
            .last
        return DeviceAPI.StatusResponse(
            deviceId: device.id, state: device.state.rawValue, group: device.group, epoch: device.ddkEpoch,
            certificateSerial: active?.serial, certificateNotAfter: active?.notAfter,
            provisioning: try await status(of: device.id, connector: try await connector(of: group)))
    }
}
