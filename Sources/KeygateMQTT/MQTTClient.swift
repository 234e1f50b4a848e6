public import NIOCore
import NIOPosix
public import NIOSSL
import Synchronization

/// A small MQTT 3.1.1 client over TLS, the way Azure IoT devices speak it: CONNECT with a client
/// certificate, SUBSCRIBE, PUBLISH at QoS 0 or 1 (waiting for PUBACK), incoming PUBLISHes as a stream
/// (acknowledged for the caller).
public final class MQTTClient: Sendable {
    /// Where to connect and how to identify.
    public struct Configuration: Sendable {
        /// The server's host name or address.
        public var host: String
        /// The server's port (8883 for MQTT over TLS).
        public var port: Int
        /// TLS with the device's certificate and the server's trust roots.
        public var tls: TLSConfiguration
        /// The name checked against the server certificate (defaults to `host`).
        public var serverHostname: String?
        /// The CONNECT client identifier (Azure IoT: the device ID).
        public var clientID: String
        /// The CONNECT user name (Azure IoT Hub: `<hub>/<device>/?api-version=…`, or DPS's form); `nil`: none.
        public var username: String?
        /// The keep-alive interval in seconds.
        public var keepAlive: UInt16 = 60
        /// Whether to ask the server to discard earlier session state.
        public var cleanSession = false
        /// How long CONNECT, SUBSCRIBE and PUBLISH may wait for their answer.
        public var timeout: TimeAmount = .seconds(30)

        /// Creates a configuration with a 60-second keep-alive, a persistent session and a 30-second timeout.
        public init(host: String, port: Int, tls: TLSConfiguration, clientID: String, username: String?) {
            self.host = host
            self.port = port
            self.tls = tls
            self.clientID = clientID
            self.username = username
        }
    }

    /// Why a connection or request failed.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// CONNACK with a non-zero return code (5: not authorised, 3: server unavailable).
        case refused(returnCode: UInt8)
        /// The connection closed before the answer.
        case closed
        /// No answer in time.
        case timedOut
        /// The server answered with something unexpected.
        case protocolViolation(String)

        /// A sentence for logs.
        public var description: String {
            switch self {
            case .refused(let code): return "the server refused the connection (CONNACK \(code))"
            case .closed: return "the connection closed"
            case .timedOut: return "no answer in time"
            case .protocolViolation(let what): return "protocol violation: \(what)"
            }
        }
    }

    fileprivate struct State {
        var nextPacketID: UInt16 = 0
        var waiting: [UInt16: CheckedContinuation<MQTTPacket, any Error>] = [:]
        /// Answers that arrived before their waiter was registered (the request sends and registers
        /// in two tasks; on a busy machine the answer can win).
        var arrived: [UInt16: MQTTPacket] = [:]
        var closed = false
    }

    private let channel: any Channel
    private let outbound: NIOAsyncChannelOutboundWriter<MQTTPacket>
    private let state: Exchange
    private let timeout: TimeAmount
    /// PUBLISHes from the server, in order; they are acknowledged before they are yielded.
    public let messages: AsyncStream<MQTTPacket.Publish>
    private let reader: Task<Void, Never>

    private init(
        channel: any Channel, outbound: NIOAsyncChannelOutboundWriter<MQTTPacket>,
        messages: AsyncStream<MQTTPacket.Publish>,
        reader: Task<Void, Never>, state: Exchange, timeout: TimeAmount
    ) {
        self.channel = channel
        self.outbound = outbound
        self.messages = messages
        self.reader = reader
        self.state = state
        self.timeout = timeout
    }

    /// Reads until the connection ends: answers go to their waiters, PUBLISHes to `messages`.
    private static func read(
        _ inbound: NIOAsyncChannelInboundStream<MQTTPacket>, outbound: NIOAsyncChannelOutboundWriter<MQTTPacket>,
        state: Exchange, messages: AsyncStream<MQTTPacket.Publish>.Continuation
    ) async {
        do {
            for try await packet in inbound {
                switch packet {
                case .publish(let publish):
                    if publish.qos == 1, let id = publish.packetID { try? await outbound.write(.puback(packetID: id)) }
                    messages.yield(publish)
                case .puback(let id), .unsuback(let id):
                    deliver(state, id: id, packet)
                case .suback(let ack):
                    deliver(state, id: ack.packetID, packet)
                case .connack:
                    deliver(state, id: 0, packet)
                default:
                    continue
                }
            }
        } catch {}
        messages.finish()
        let waiting = state.withLock { state -> [CheckedContinuation<MQTTPacket, any Error>] in
            state.closed = true
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for waiter in waiting { waiter.resume(throwing: Failure.closed) }
    }

    /// Hands an answer to its waiter, or keeps it until the waiter registers.
    private static func deliver(_ state: Exchange, id: UInt16, _ packet: MQTTPacket) {
        let waiter = state.withLock { state -> CheckedContinuation<MQTTPacket, any Error>? in
            if let waiter = state.waiting.removeValue(forKey: id) { return waiter }
            state.arrived[id] = packet
            return nil
        }
        waiter?.resume(returning: packet)
    }

    /// Ends the request `id` with `result` (a failure: timeout, close), forgetting any early answer.
    private static func resume(
        _ state: Exchange, id: UInt16, with result: Result<MQTTPacket, any Error>
    ) {
        let waiter = state.withLock { state in
            state.arrived[id] = nil
            return state.waiting.removeValue(forKey: id)
        }
        waiter?.resume(with: result)
    }

    /// Opens a TLS connection and completes CONNECT; throws `refused` for a non-zero CONNACK.
    public static func connect(_ configuration: Configuration, group: (any EventLoopGroup)? = nil) async throws
        -> MQTTClient
    {
        let group = group ?? MultiThreadedEventLoopGroup.singleton
        let context = try NIOSSLContext(configuration: configuration.tls)
        let hostname = configuration.serverHostname ?? configuration.host
        let sniName =
            hostname.contains(":") || hostname.split(separator: ".").allSatisfy({ UInt8($0) != nil })
            ? nil : hostname
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(configuration.timeout)
            .connect(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers: [any ChannelHandler] = [
                        try NIOSSLClientHandler(context: context, serverHostname: sniName),
                        ByteToMessageHandler(MQTTPacketDecoder()),
                        MessageToByteHandler(MQTTPacketEncoder()),
                    ]
                    try channel.pipeline.syncOperations.addHandlers(handlers)
                    return try NIOAsyncChannel<MQTTPacket, MQTTPacket>(wrappingChannelSynchronously: channel)
                }
            }
        let state = Exchange()
        let (messages, messageSink) = AsyncStream.makeStream(of: MQTTPacket.Publish.self)
        let (writers, writerSink) = AsyncStream.makeStream(of: NIOAsyncChannelOutboundWriter<MQTTPacket>.self)
        let reader = Task {
            try? await channel.executeThenClose { inbound, outbound in
                writerSink.yield(outbound)
                writerSink.finish()
                await read(inbound, outbound: outbound, state: state, messages: messageSink)
            }
            writerSink.finish()
        }
        var iterator = writers.makeAsyncIterator()
        guard let outbound = await iterator.next() else { throw Failure.closed }
        let mqtt = MQTTClient(
            channel: channel.channel, outbound: outbound, messages: messages, reader: reader, state: state,
            timeout: configuration.timeout)
        let answer = try await mqtt.request(id: 0) {
            try await outbound.write(
                .connect(
                    .init(
                        clientID: configuration.clientID, username: configuration.username, password: nil,
                        keepAlive: configuration.keepAlive, cleanSession: configuration.cleanSession, will: nil)))
        }
        guard case .connack(let ack) = answer else { throw Failure.protocolViolation("expected CONNACK") }
        guard ack.returnCode == 0 else {
            await mqtt.close()
            throw Failure.refused(returnCode: ack.returnCode)
        }
        return mqtt
    }

    /// Subscribes and answers the granted QoS per filter (0x80: refused).
    public func subscribe(_ topics: [String], qos: UInt8 = 1) async throws -> [UInt8] {
        let id = nextPacketID()
        let outbound = self.outbound
        let answer = try await request(id: id) {
            try await outbound.write(
                .subscribe(.init(packetID: id, filters: topics.map { .init(topic: $0, qos: qos) })))
        }
        guard case .suback(let ack) = answer else { throw Failure.protocolViolation("expected SUBACK") }
        return ack.returnCodes
    }

    /// Publishes; at QoS 1 it returns once the server acknowledged.
    public func publish(_ topic: String, payload: [UInt8], qos: UInt8 = 1) async throws {
        guard qos == 1 else {
            try await outbound.write(
                .publish(.init(topic: topic, payload: payload, qos: 0, retain: false, dup: false, packetID: nil)))
            return
        }
        let id = nextPacketID()
        let outbound = self.outbound
        _ = try await request(id: id) {
            try await outbound.write(
                .publish(.init(topic: topic, payload: payload, qos: 1, retain: false, dup: false, packetID: id)))
        }
    }

    /// Whether the connection is still open.
    public var isConnected: Bool { channel.isActive }

    /// Sends DISCONNECT (if still open) and closes.
    public func close() async {
        if channel.isActive { try? await outbound.write(.disconnect) }
        outbound.finish()
        try? await channel.close()
        _ = await reader.value
    }

    /// Waits until the server closes the connection (or `timeout`); true if it did.
    public func waitUntilClosed(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while channel.isActive && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !channel.isActive
    }

    private func nextPacketID() -> UInt16 {
        state.withLock { state in
            state.nextPacketID = state.nextPacketID == UInt16.max ? 1 : state.nextPacketID + 1
            state.arrived[state.nextPacketID] = nil  // a late answer to an earlier use of the ID
            return state.nextPacketID
        }
    }

    /// Registers a waiter for the answer with `id`, sends, and waits (bounded by the timeout).
    private func request(id: UInt16, send: @escaping @Sendable () async throws -> Void) async throws -> MQTTPacket {
        let timeout = self.timeout
        let state = self.state
        return try await withThrowingTaskGroup(of: MQTTPacket.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    let (early, closed) = state.withLock { state -> (MQTTPacket?, Bool) in
                        if let early = state.arrived.removeValue(forKey: id) { return (early, false) }
                        if state.closed { return (nil, true) }
                        state.waiting[id] = continuation
                        return (nil, false)
                    }
                    if let early {
                        continuation.resume(returning: early)
                    } else if closed {
                        continuation.resume(throwing: Failure.closed)
                    }
                }
            }
            group.addTask {
                try await send()
                try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                throw Failure.timedOut
            }
            defer { group.cancelAll() }
            do {
                return try await group.next()!
            } catch {
                Self.resume(state, id: id, with: .failure(error))
                throw error
            }
        }
    }
}

extension MQTTClient {
    /// What the reader task and the requests share: waiters by packet ID, early answers, closure.
    fileprivate final class Exchange: Sendable {
        private let state = Mutex(State())

        func withLock<Result: Sendable>(_ body: (inout State) -> Result) -> Result {
            state.withLock { body(&$0) }
        }
    }
}
