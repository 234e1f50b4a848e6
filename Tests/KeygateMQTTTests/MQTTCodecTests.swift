import KeygateMQTT
import NIOCore
import NIOEmbedded
import Testing

@Suite struct MQTTCodecTests {
    static let packets: [MQTTPacket] = [
        .connect(
            .init(
                clientID: "dev-1", username: "0ne00000000/registrations/dev-1/api-version=2019-03-31&ClientVersion=x",
                keepAlive: 60, cleanSession: false)),
        .connect(
            .init(
                clientID: "d", username: "u", password: [1, 2, 3], keepAlive: 0, cleanSession: true,
                will: .init(topic: "w", message: [9], qos: 1, retain: true))),
        .connack(.init(sessionPresent: false, returnCode: 0)),
        .connack(.init(sessionPresent: true, returnCode: 5)),
        .publish(
            .init(
                topic: "$dps/registrations/PUT/iotdps-register/?$rid=1", payload: Array("{}".utf8), qos: 1, packetID: 7)
        ),
        .publish(.init(topic: "devices/d/messages/events/", payload: [UInt8](repeating: 0x41, count: 300), qos: 0)),
        .publish(.init(topic: "t", payload: [], qos: 1, retain: true, dup: true, packetID: 65535)),
        .puback(packetID: 7),
        .subscribe(.init(packetID: 1, filters: [.init(topic: "$dps/registrations/res/#", qos: 1)])),
        .suback(.init(packetID: 1, returnCodes: [1, 0x80])),
        .unsubscribe(.init(packetID: 2, topics: ["a/b", "c"])),
        .unsuback(packetID: 2),
        .pingreq, .pingresp, .disconnect,
    ]

    @Test(arguments: packets)
    func everyPacketRoundTrips(_ packet: MQTTPacket) throws {
        let bytes = MQTTCodec.encode(packet)
        let (decoded, used) = try #require(try MQTTCodec.decode(bytes[...]))
        #expect(decoded == packet)
        #expect(used == bytes.count)
        // Every proper prefix asks for more bytes instead of failing.
        for cut in 0..<bytes.count {
            #expect(try MQTTCodec.decode(bytes[..<cut]) == nil, "prefix of \(cut) bytes")
        }
    }

    /// Byte-for-byte vectors from the MQTT 3.1.1 specification's formats.
    @Test func knownEncodings() throws {
        #expect(MQTTCodec.encode(.pingreq) == [0xC0, 0x00])
        #expect(MQTTCodec.encode(.connack(.init(returnCode: 5))) == [0x20, 0x02, 0x00, 0x05])
        #expect(MQTTCodec.encode(.puback(packetID: 0x1234)) == [0x40, 0x02, 0x12, 0x34])
        let connect = MQTTCodec.encode(.connect(.init(clientID: "ab", keepAlive: 10, cleanSession: true)))
        #expect(connect == [0x10, 14, 0, 4, 0x4D, 0x51, 0x54, 0x54, 4, 0x02, 0, 10, 0, 2, 0x61, 0x62])
        // Remaining length 321 = 0xC1 0x02 (spec table 2.4).
        let big = MQTTCodec.encode(.publish(.init(topic: "a", payload: [UInt8](repeating: 0, count: 318))))
        #expect(Array(big.prefix(3)) == [0x30, 0xC1, 0x02])
    }

    @Test func malformedInputIsRefusedWithACode() {
        let cases: [([UInt8], MQTTError.Code)] = [
            ([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], .malformedPacket),  // 5-byte remaining length
            ([0x30, 0x80, 0x80, 0x80, 0x01], .packetTooLarge),  // 2 MiB announced
            ([0x36, 0x03, 0x00, 0x01, 0x61], .malformedPacket),  // PUBLISH QoS 3
            ([0x80, 0x03, 0x00, 0x01, 0x00], .malformedPacket),  // SUBSCRIBE with wrong flags
            ([0x82, 0x02, 0x00, 0x01], .malformedPacket),  // SUBSCRIBE without filters
            ([0x10, 0x0A, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x0A], .unsupportedProtocol),  // MQTT 5
            ([0x10, 0x0C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x03, 0x00, 0x0A, 0x00, 0x00], .malformedPacket),  // reserved flag
            ([0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x41], .malformedPacket),  // invalid UTF-8 topic
            ([0x30, 0x03, 0x00, 0x05, 0x61], .malformedPacket),  // string runs past the packet
            ([0x50, 0x02, 0x00, 0x01], .unsupportedPacketType),  // PUBREC
            ([0x00, 0x00], .malformedPacket),  // reserved type 0
            ([0xC0, 0x01, 0x00], .malformedPacket),  // PINGREQ with a body
        ]
        for (bytes, expected) in cases {
            var code: MQTTError.Code?
            do { _ = try MQTTCodec.decode(bytes[...]) } catch let error as MQTTError { code = error.code } catch {}
            #expect(code == expected, "\(bytes)")
        }
    }

    /// Thousands of mutated packets: each is decoded, asks for more bytes, or is refused with MQTTError.
    @Test func mutatedPacketsNeverCrashTheDecoder() {
        var rng = SystemRandomNumberGenerator()
        let seeds = Self.packets.map(MQTTCodec.encode)
        var refused = 0
        for round in 0..<5000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes = Array(bytes.prefix(Int.random(in: 1...bytes.count, using: &rng)))
                default: bytes.append(UInt8.random(in: 0...255, using: &rng))
                }
            }
            do { _ = try MQTTCodec.decode(bytes[...]) } catch is MQTTError { refused += 1 } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        #expect(refused > 500)
    }

    @Test func theChannelDecoderFramesAStreamAndRejectsOversizedPackets() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MQTTPacketDecoder(maximumPacketSize: 1024)))
        var stream: [UInt8] = []
        for packet in Self.packets.prefix(6) { stream += MQTTCodec.encode(packet) }
        // Deliver in small, uneven pieces.
        var index = 0
        var size = 1
        while index < stream.count {
            let end = min(stream.count, index + size)
            try channel.writeInbound(ByteBuffer(bytes: stream[index..<end]))
            index = end
            size = size % 7 + 1
        }
        var received: [MQTTPacket] = []
        while let packet = try channel.readInbound(as: MQTTPacket.self) { received.append(packet) }
        #expect(received == Array(Self.packets.prefix(6)))

        let oversized = MQTTCodec.encode(.publish(.init(topic: "t", payload: [UInt8](repeating: 1, count: 2000))))
        #expect(throws: MQTTError.self) { try channel.writeInbound(ByteBuffer(bytes: oversized)) }
        _ = try? channel.finish()
    }

    /// A bad first byte is refused at once: the decoder does not wait for a length that may never come.
    @Test(arguments: [UInt8(0x00), 0xF0, 0x50, 0x62, 0x70, 0x36, 0x80, 0xA0, 0x11, 0xC1])
    func aBadFixedHeaderIsRefusedFromItsFirstByte(_ first: UInt8) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MQTTPacketDecoder()))
        #expect(throws: MQTTError.self) { try channel.writeInbound(ByteBuffer(bytes: [first])) }
        _ = try? channel.finish()
    }

    @Test func goodFirstBytesWaitForTheRest() throws {
        for first: UInt8 in [0x10, 0x30, 0x32, 0x3B, 0x40, 0x82, 0xA2, 0xC0, 0xE0] {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(MQTTPacketDecoder()))
            try channel.writeInbound(ByteBuffer(bytes: [first]))
            #expect(try channel.readInbound(as: MQTTPacket.self) == nil)
            _ = try? channel.finish()
        }
    }
}
