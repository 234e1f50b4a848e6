/// A server running in a task of this process (a benchmark's, the demo's, a test's), started once
/// it said it is listening.
///
/// `run` is a server's `run(onReady:)`; what it passes to `onReady` (bound ports, connection facts)
/// is kept as ``ready``. A server that fails before it is ready throws its error from ``start(_:)``
/// instead of leaving the caller waiting.
public struct BackgroundServer<Ready: Sendable>: Sendable {
    /// What the server reported once it was listening.
    public let ready: Ready
    let task: Task<Void, any Error>

    /// Starts `run` in a task and returns once it called its ready callback.
    public static func start(
        _ run: @escaping @Sendable (_ onReady: @escaping @Sendable (Ready) -> Void) async throws -> Void
    ) async throws -> BackgroundServer {
        let (stream, continuation) = AsyncStream.makeStream(of: Ready.self)
        let task = Task {
            defer { continuation.finish() }
            try await run { continuation.yield($0) }
        }
        var iterator = stream.makeAsyncIterator()
        guard let ready = await iterator.next() else {
            try await task.value
            throw DidNotStart()
        }
        return BackgroundServer(ready: ready, task: task)
    }

    /// Asks the server to stop (its task is cancelled) without waiting.
    public func cancel() { task.cancel() }

    /// Stops the server and waits until it has.
    public func stop() async {
        task.cancel()
        _ = await task.result
    }

    /// The server returned without reporting that it listens.
    public struct DidNotStart: Error, CustomStringConvertible {
        /// A sentence for logs.
        public var description: String { "the server stopped before it was listening" }
    }
}
