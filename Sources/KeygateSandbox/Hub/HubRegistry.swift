import Foundation
import Synchronization
import X509

/// The hub's live side: which devices are connected (one connection each), telemetry counts, and
/// the rule for who may connect. Identities themselves live in the sandbox state.
final class HubRegistry: Sendable {
    let store: SandboxStore

    private struct Live {
        var connectionID: UInt64
        var close: @Sendable () -> Void
    }

    private let live = Mutex<[String: Live]>([:])
    private let telemetry = Mutex<[String: Int]>([:])
    private let nextConnection = Mutex<UInt64>(0)

    init(store: SandboxStore) {
        self.store = store
    }

    /// A new connection ID for `attach`.
    func connectionID() -> UInt64 {
        nextConnection.withLock {
            $0 += 1
            return $0
        }
    }

    /// Records a device's connection; an older connection of the same device is closed.
    func attach(deviceID: String, connectionID: UInt64, close: @escaping @Sendable () -> Void) {
        let previous = live.withLock { live -> Live? in
            let old = live[deviceID]
            live[deviceID] = Live(connectionID: connectionID, close: close)
            return old
        }
        previous?.close()
    }

    func detach(deviceID: String, connectionID: UInt64) {
        live.withLock { live in
            if live[deviceID]?.connectionID == connectionID { live[deviceID] = nil }
        }
    }

    /// Closes the device's live connection, if any (it was disabled or deleted).
    func disconnect(deviceID: String) {
        let current = live.withLock { $0.removeValue(forKey: deviceID) }
        current?.close()
    }

    func isConnected(_ deviceID: String) -> Bool { live.withLock { $0[deviceID] != nil } }
    var connectedCount: Int { live.withLock { $0.count } }

    func countTelemetry(_ deviceID: String) {
        telemetry.withLock { $0[deviceID, default: 0] += 1 }
    }

    var telemetryCounts: [String: Int] { telemetry.withLock { $0 } }

    /// Why a device may not connect, or `nil` when it may: it must exist, be enabled, and present a
    /// certificate with CN = device ID whose thumbprint is registered (`selfSigned`) or that a CA
    /// known to the hub issued (`certificateAuthority`).
    func refusal(deviceID: String, leafDER: [UInt8]?) async -> String? {
        let (found, authorities) = await store.read { ($0.hub.devices[deviceID], $0.hub.certificateAuthorities) }
        guard let device = found else { return "unknown device" }
        guard device["status"]?.string == "enabled" else { return "device disabled" }
        guard let leafDER, let facts = CertificateFacts(der: leafDER) else { return "no client certificate" }
        guard facts.commonName == deviceID else { return "certificate CN is not the device ID" }
        guard CertificateFacts.isCurrent(facts.certificate) else { return "certificate expired or not yet valid" }
        switch device[path: "authentication", "type"]?.string {
        case "selfSigned":
            let registered = ["primaryThumbprint", "secondaryThumbprint"].compactMap {
                device[path: "authentication", "x509Thumbprint", $0]?.string?.uppercased()
            }
            return registered.contains(facts.sha1Thumbprint) || registered.contains(facts.sha256Thumbprint)
                ? nil : "thumbprint mismatch"
        case "certificateAuthority":
            let issued = authorities.contains { pem in
                CertificateFacts(text: pem)?.issued(facts.certificate) ?? false
            }
            return issued ? nil : "no known CA issued the certificate"
        default:
            return "the device does not use X.509"
        }
    }
}

extension HubState {
    /// Creates or updates a device identity, filling what the hub owns. `status` defaults to enabled.
    static func prepareDevice(_ body: JSONValue, id: String, existing: JSONValue?) -> JSONValue {
        var device = body
        let now = ISO8601DateFormatter().string(from: Date())
        device["deviceId"] = .string(id)
        device["generationId"] = existing?["generationId"] ?? .string(String(UInt64.random(in: 1..<UInt64.max)))
        device["etag"] = .string(Data(String(UInt32.random(in: 1..<UInt32.max)).utf8).base64EncodedString())
        let status = device["status"]?.string ?? "enabled"
        device["status"] = .string(status == "disabled" ? "disabled" : "enabled")
        if existing?["status"]?.string != device["status"]?.string || existing == nil {
            device["statusUpdatedTime"] = .string(now)
        } else {
            device["statusUpdatedTime"] = existing?["statusUpdatedTime"]
        }
        device["connectionState"] = existing?["connectionState"] ?? .string("Disconnected")
        device["connectionStateUpdatedTime"] = existing?["connectionStateUpdatedTime"] ?? .string(now)
        device["lastActivityTime"] = existing?["lastActivityTime"] ?? .string(now)
        device["cloudToDeviceMessageCount"] = .number(0)
        if device["capabilities"] == nil || device["capabilities"] == .null {
            device["capabilities"] = .object(["iotEdge": .bool(false)])
        }
        var authentication = device["authentication"] ?? .object([:])
        if authentication["type"]?.string == nil { authentication["type"] = .string("sas") }
        if authentication["type"]?.string == "sas" {
            var keys = authentication["symmetricKey"] ?? .object([:])
            for name in ["primaryKey", "secondaryKey"] where keys[name]?.string?.isEmpty ?? true {
                keys[name] = .string(Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString())
            }
            authentication["symmetricKey"] = keys
        }
        device["authentication"] = authentication
        return device
    }
}
