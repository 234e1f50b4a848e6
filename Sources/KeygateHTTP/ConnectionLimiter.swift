import Foundation
public import NIOCore
import Synchronization

/// Caps the connections of one listener, in all and per client address, so that a host opening
/// thousands of idle connections cannot exhaust the process's file descriptors. A connection over a
/// cap is closed as soon as it is accepted; `onRefused` hears of it (for a log line and a metric).
public final class ConnectionLimiter: Sendable {
    /// The listener's name in logs and metrics (`https`, `http`).
    public let listener: String
    /// Open connections allowed in all.
    public let maximum: Int
    /// Open connections allowed from one address.
    public let perAddress: Int
    private let onRefused: @Sendable (_ reason: String, _ address: String) -> Void
    private let state = Mutex<(total: Int, byAddress: [String: Int])>((0, [:]))

    /// Creates a limiter; `onRefused` gets the reason (`listener` or `address`) and the client address.
    public init(
        listener: String, maximum: Int, perAddress: Int,
        onRefused: @escaping @Sendable (_ reason: String, _ address: String) -> Void
    ) {
        self.listener = listener
        self.maximum = maximum
        self.perAddress = perAddress
        self.onRefused = onRefused
    }

    /// The default cap for this process: below its file-descriptor limit (two listeners share it).
    public static func defaultMaximum() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 4096 }
        let soft = limit.rlim_cur > 1 << 20 ? 65_536 : Int(limit.rlim_cur)
        return max(64, min(16_384, (soft - 128) / 2))
    }

    /// Open connections now, in all.
    public var open: Int { state.withLock { $0.total } }

    /// The handler to put first in each accepted connection's pipeline.
    public func handler() -> ConnectionLimitHandler { ConnectionLimitHandler(limiter: self) }

    func admit(_ address: String) -> Bool {
        let refusal: String? = state.withLock { state in
            if state.total >= maximum { return "listener" }
            if state.byAddress[address, default: 0] >= perAddress { return "address" }
            state.total += 1
            state.byAddress[address, default: 0] += 1
            return nil
        }
        if let refusal { onRefused(refusal, address) }
        return refusal == nil
    }

    func release(_ address: String) {
        state.withLock { state in
            state.total -= 1
            let left = state.byAddress[address, default: 1] - 1
            state.byAddress[address] = left > 0 ? left : nil
        }
    }
}

/// Counts its connection in the ``ConnectionLimiter``, or closes it when a cap is reached.
public final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    /// The handler passes every message on untouched.
    public typealias InboundIn = NIOAny
    private let limiter: ConnectionLimiter
    private let counted = Mutex<String?>(nil)

    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
    }

    /// Counts the new connection against the caps, or closes it when one is reached.
    public func handlerAdded(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if limiter.admit(address) {
            counted.withLock { $0 = address }
        } else {
            context.close(promise: nil)
        }
    }

    /// Releases the connection's count (once).
    public func handlerRemoved(context: ChannelHandlerContext) { releaseOnce() }

    /// Releases the connection's count (once) and passes the event on.
    public func channelInactive(context: ChannelHandlerContext) {
        releaseOnce()
        context.fireChannelInactive()
    }

    private func releaseOnce() {
        if let address = counted.withLock({ state -> String? in
            defer { state = nil }
            return state
        }) {
            limiter.release(address)
        }
    }
}
