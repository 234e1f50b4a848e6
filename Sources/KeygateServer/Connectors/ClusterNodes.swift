import Synchronization

/// How many Keygate nodes are live in this deployment, as the last heartbeat in the database said
/// (1 on SQLite, or before the first heartbeat). Azure allowances (calls a minute per connector) are
/// split evenly over them, so the nodes together stay under the service's throttle.
public enum ClusterNodes {
    private static let count = Mutex<Int>(1)

    /// The live nodes (at least 1).
    @Sendable public static func live() -> Int { count.withLock { $0 } }

    /// Records the live nodes a heartbeat counted.
    static func set(_ value: Int) { count.withLock { $0 = max(1, value) } }
}
