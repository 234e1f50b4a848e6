import Foundation
import KeygateMQTT
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// MQTT 3.1.1 over TLS for devices: DPS registration (`{idScope}/registrations/{id}/...` usernames)
/// and IoT Hub (`{hub}/{deviceId}/...`), told apart by the username as Azure's own endpoint does.
/// A malformed, oversized or unexpected packet closes that one connection; everyone else carries on.
final class MQTTServer: Service, Sendable {
    let port: Int
    private let server: NIOAsyncChannel<NIOAsyncChannel<MQTTPacket, MQTTPacket>, Never>
    private let sessions: MQTTSessions

    private init(
        port: Int, server: NIOAsyncChannel<NIOAsyncChannel<MQTTPacket, MQTTPacket>, Never>, sessions: MQTTSessions
    ) {
        self.port = port
        self.server = server
        self.sessions = sessions
    }

    /// Binds the listener now (so its port is known); connections are served by `run()`.
    static func start(
        host: String, port: Int, tls: TLSConfiguration, registrar: DPSRegistrar, hub: HubRegistry,
        injector: FaultInjector, store: SandboxStore, logger: Logger
    ) async throws -> MQTTServer {
        let context = try NIOSSLContext(configuration: tls)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers: [any ChannelHandler] = [
                        NIOSSLServerHandler(
                            context: context,
                            customVerificationCallback: { _, promise in promise.succeed(.certificateVerified) }),
                        // A connection that says nothing for 90 s (1.5 x the SDKs' keep-alive) is closed,
                        // whether it never sent CONNECT or stopped pinging.
                        IdleStateHandler(readTimeout: .seconds(90)),
                        CloseWhenIdle(),
                        ByteToMessageHandler(MQTTPacketDecoder()),
                        MessageToByteHandler(MQTTPacketEncoder()),
                    ]
                    try channel.pipeline.syncOperations.addHandlers(handlers)
                    return try NIOAsyncChannel<MQTTPacket, MQTTPacket>(wrappingChannelSynchronously: channel)
                }
            }
        let sessions = MQTTSessions(registrar: registrar, hub: hub, injector: injector, store: store, logger: logger)
        return MQTTServer(port: server.channel.localAddress?.port ?? port, server: server, sessions: sessions)
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.sessions.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            self.server.channel.close(promise: nil)
        }
    }
}

/// What one MQTT connection does, from CONNECT to close.
struct MQTTSessions: Sendable {
    let registrar: DPSRegistrar
    let hub: HubRegistry
    let injector: FaultInjector
    let store: SandboxStore
    let logger: Logger

    /// Ends the session: the connection is closed by the caller.
    struct Close: Error {
        var reason: String
    }

    func serve(_ connection: NIOAsyncChannel<MQTTPacket, MQTTPacket>) async {
        let channel = connection.channel
        do {
            try await connection.executeThenClose { inbound, outbound in
                var packets = inbound.makeAsyncIterator()
                guard case .connect(let connect) = try await packets.next() else {
                    throw Close(reason: "the first packet must be CONNECT")
                }
                let leaf = try? await channel.nioSSL_peerCertificate().get()?.toDERBytes()
                let username = connect.username ?? ""
                if username.contains("/registrations/") {
                    try await serveDPS(connect, leaf: leaf, packets: &packets, outbound: outbound)
                } else {
                    try await serveHub(connect, leaf: leaf, channel: channel, packets: &packets, outbound: outbound)
                }
            }
        } catch {
            logger.debug("MQTT connection closed: \(error)")
        }
    }

    // MARK: DPS

    private func serveDPS(
        _ connect: MQTTPacket.Connect, leaf: [UInt8]?,
        packets: inout NIOAsyncChannelInboundStream<MQTTPacket>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<MQTTPacket>
    ) async throws {
        let registrationID = connect.clientID
        let scope = (connect.username ?? "").split(separator: "/").first.map(String.init) ?? ""
        if try await faulted(.dpsDevice, outbound: outbound) { return }
        guard scope == (await store.read({ $0.dps.idScope })) else {
            try await outbound.write(.connack(.init(returnCode: MQTTPacket.ConnAck.notAuthorized)))
            throw Close(reason: "unknown ID scope")
        }
        let match: DPSRegistrar.Match
        switch await registrar.match(registrationID: registrationID, leafDER: leaf) {
        case .success(let found): match = found
        case .failure(let refusal):
            try await outbound.write(.connack(.init(returnCode: MQTTPacket.ConnAck.notAuthorized)))
            throw Close(reason: refusal.reason)
        }
        try await outbound.write(.connack(.init(returnCode: MQTTPacket.ConnAck.accepted)))
        var nextID: UInt16 = 0
        func reply(_ topic: String, _ object: Any) async throws {
            nextID = nextID == UInt16.max ? 1 : nextID + 1
            let payload = Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
            try await outbound.write(
                .publish(.init(topic: topic, payload: payload, qos: 1, retain: false, dup: false, packetID: nextID)))
        }
        while let packet = try await packets.next() {
            switch packet {
            case .subscribe(let subscribe):
                let codes = subscribe.filters.map { $0.topic == "$dps/registrations/res/#" ? min($0.qos, 1) : 0x80 }
                try await outbound.write(.suback(.init(packetID: subscribe.packetID, returnCodes: codes)))
            case .publish(let publish):
                try await acknowledge(publish, outbound: outbound)
                let (action, parameters) = Self.parse(topic: publish.topic)
                let rid = parameters["$rid"] ?? ""
                switch action {
                case "$dps/registrations/PUT/iotdps-register/":
                    let operationID = try await registrar.register(match, registrationID: registrationID)
                    try await reply(
                        "$dps/registrations/res/202/?$rid=\(rid)&retry-after=1",
                        ["operationId": operationID, "status": "assigning"])
                case "$dps/registrations/GET/iotdps-get-operationstatus/":
                    if let result = registrar.operation(parameters["operationId"] ?? "", registrationID: registrationID)
                    {
                        try await reply("$dps/registrations/res/200/?$rid=\(rid)", result.foundation)
                    } else {
                        try await reply(
                            "$dps/registrations/res/404/?$rid=\(rid)",
                            ["errorCode": 404_003, "message": "No such operation."])
                    }
                default:
                    throw Close(reason: "unknown DPS topic \(publish.topic)")
                }
            case .puback, .unsubscribe:
                continue
            case .pingreq:
                try await outbound.write(.pingresp)
            case .disconnect:
                return
            default:
                throw Close(reason: "unexpected packet")
            }
        }
    }

    // MARK: IoT Hub

    private func serveHub(
        _ connect: MQTTPacket.Connect, leaf: [UInt8]?, channel: any Channel,
        packets: inout NIOAsyncChannelInboundStream<MQTTPacket>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<MQTTPacket>
    ) async throws {
        let deviceID = connect.clientID
        let parts = (connect.username ?? "").split(separator: "/", omittingEmptySubsequences: false)
        if try await faulted(.hubDevice, outbound: outbound) { return }
        let hostName = await store.read { $0.hub.hostName }
        guard parts.count >= 2, parts[0] == hostName, parts[1] == deviceID else {
            try await outbound.write(.connack(.init(returnCode: MQTTPacket.ConnAck.notAuthorized)))
            throw Close(reason: "the username must be {hub}/{deviceId}/...")
        }
        if let refusal = await hub.refusal(deviceID: deviceID, leafDER: leaf) {
            try await outbound.write(.connack(.init(returnCode: MQTTPacket.ConnAck.notAuthorized)))
            throw Close(reason: refusal)
        }
        let connectionID = hub.connectionID()
        hub.attach(deviceID: deviceID, connectionID: connectionID) { channel.close(promise: nil) }
        defer { hub.detach(deviceID: deviceID, connectionID: connectionID) }
        try await outbound.write(.connack(.init(returnCode: MQTTPacket.ConnAck.accepted)))
        let events = "devices/\(deviceID)/messages/events/"
        let allowed = [
            "devices/\(deviceID)/messages/devicebound/#", "$iothub/twin/res/#", "$iothub/methods/POST/#",
            "$iothub/twin/PATCH/properties/desired/#",
        ]
        while let packet = try await packets.next() {
            switch packet {
            case .subscribe(let subscribe):
                let codes = subscribe.filters.map { allowed.contains($0.topic) ? min($0.qos, 1) : 0x80 }
                try await outbound.write(.suback(.init(packetID: subscribe.packetID, returnCodes: codes)))
            case .publish(let publish):
                guard publish.topic.hasPrefix(events) || publish.topic == String(events.dropLast()) else {
                    throw Close(reason: "unknown topic \(publish.topic)")
                }
                if publish.qos > 1 { throw Close(reason: "QoS 2 is not supported") }
                hub.countTelemetry(deviceID)
                try await acknowledge(publish, outbound: outbound)
            case .puback, .unsubscribe:
                continue
            case .pingreq:
                try await outbound.write(.pingresp)
            case .disconnect:
                return
            default:
                throw Close(reason: "unexpected packet")
            }
        }
    }

    // MARK: Shared

    private func acknowledge(_ publish: MQTTPacket.Publish, outbound: NIOAsyncChannelOutboundWriter<MQTTPacket>)
        async throws
    {
        guard publish.qos <= 1 else { throw Close(reason: "QoS 2 is not supported") }
        if publish.qos == 1, let id = publish.packetID { try await outbound.write(.puback(packetID: id)) }
    }

    /// Applies an injected fault at CONNECT: CONNACK 3 (server unavailable), a late answer, or a drop.
    private func faulted(_ surface: SandboxSurface, outbound: NIOAsyncChannelOutboundWriter<MQTTPacket>)
        async throws -> Bool
    {
        guard let decision = injector.decide(surface) else { return false }
        switch decision {
        case .respond:
            try await outbound.write(.connack(.init(returnCode: 3)))
            return true
        case .delay(let seconds):
            try await Task.sleep(for: .seconds(seconds))
            try await outbound.write(.connack(.init(returnCode: 3)))
            return true
        case .drop:
            throw Close(reason: "injected drop")
        }
    }

    /// Splits `$dps/.../?$rid=1&operationId=x` into the part before `?` (with it) and its parameters.
    static func parse(topic: String) -> (String, [String: String]) {
        guard let mark = topic.firstIndex(of: "?") else { return (topic, [:]) }
        var parameters: [String: String] = [:]
        for pair in topic[topic.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 {
                parameters[String(parts[0])] = String(parts[1]).removingPercentEncoding ?? String(parts[1])
            }
        }
        return (String(topic[..<mark]), parameters)
    }
}

/// Closes the connection when `IdleStateHandler` reports no reads.
final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
