public import NIOCore

/// Frames MQTT packets out of a byte stream. Malformed or oversized input fails the channel
/// pipeline with ``MQTTError``; the connection's owner closes just that connection.
public struct MQTTPacketDecoder: ByteToMessageDecoder {
    /// The decoder emits whole packets.
    public typealias InboundOut = MQTTPacket
    /// Packets above this size (fixed header included) fail with `packetTooLarge`.
    public let maximumPacketSize: Int

    /// Creates a decoder with a size limit (256 KiB by default).
    public init(maximumPacketSize: Int = MQTTCodec.defaultMaximumPacketSize) {
        self.maximumPacketSize = maximumPacketSize
    }

    /// Emits the next whole packet in `buffer`, or waits for more bytes; throws ``MQTTError`` for bad input.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // Find the packet's size from the fixed header before copying anything.
        let view = buffer.readableBytesView
        guard let first = view.first else { return .needMoreData }
        // Refuse a bad first byte at once, not after waiting for a length it may never send.
        try Self.checkFixedHeader(first)
        guard view.count >= 2 else { return .needMoreData }
        var length = 0
        var multiplier = 1
        var headerSize = 1
        for byte in view.dropFirst().prefix(4) {
            headerSize += 1
            length += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 { break }
            multiplier *= 128
            if headerSize == 5 { throw MQTTError(.malformedPacket, "the remaining length uses more than 4 bytes") }
        }
        if headerSize < 5, let last = view.dropFirst().prefix(headerSize - 1).last, last & 0x80 != 0 {
            return .needMoreData
        }
        guard headerSize + length <= maximumPacketSize else {
            throw MQTTError(
                .packetTooLarge, "a \(headerSize + length)-byte packet exceeds the \(maximumPacketSize)-byte limit")
        }
        guard view.count >= headerSize + length, let bytes = buffer.readBytes(length: headerSize + length) else {
            return .needMoreData
        }
        guard let (packet, _) = try MQTTCodec.decode(bytes[...], maximumSize: maximumPacketSize) else {
            throw MQTTError(.malformedPacket, "an incomplete packet")
        }
        context.fireChannelRead(wrapInboundOut(packet))
        return .continue
    }

    /// The packet type and its flags (MQTT 3.1.1, 2.2): reserved types, the QoS 2 handshake, QoS 3 and
    /// wrong fixed flags are refused from the first byte.
    static func checkFixedHeader(_ byte: UInt8) throws {
        let type = byte >> 4
        let flags = byte & 0x0F
        switch type {
        case 0, 15:
            throw MQTTError(.malformedPacket, "packet type \(type) is reserved")
        case 5, 6, 7:
            throw MQTTError(.unsupportedPacketType, "the QoS 2 handshake (packet type \(type)) is not supported")
        case 3:
            if (flags >> 1) & 0x03 == 3 { throw MQTTError(.malformedPacket, "a PUBLISH cannot have QoS 3") }
        case 8, 10:
            if flags != 0x02 { throw MQTTError(.malformedPacket, "packet type \(type) must have flags 0010") }
        default:
            if flags != 0 { throw MQTTError(.malformedPacket, "packet type \(type) must have flags 0000") }
        }
    }

    /// At end of input, decodes the remaining bytes the same way as ``decode(context:buffer:)``.
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        try decode(context: context, buffer: &buffer)
    }
}

/// Writes MQTT packets.
public struct MQTTPacketEncoder: MessageToByteEncoder {
    /// The encoder takes packets.
    public typealias OutboundIn = MQTTPacket

    /// Creates an encoder.
    public init() {}

    /// Appends the packet's wire bytes to `out`.
    public func encode(data: MQTTPacket, out: inout ByteBuffer) throws {
        out.writeBytes(MQTTCodec.encode(data))
    }
}
