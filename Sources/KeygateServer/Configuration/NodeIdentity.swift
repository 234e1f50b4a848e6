import Foundation

/// How this process names itself to the others sharing the database (outbox leases, periodic-work
/// claims, logs): `KEYGATE_NODE_NAME` when set, else the host name and process ID.
public enum NodeIdentity {
    /// This process's node name.
    public static let current: String = {
        if let name = ProcessInfo.processInfo.environment["KEYGATE_NODE_NAME"], !name.isEmpty { return name }
        return "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }()
}
