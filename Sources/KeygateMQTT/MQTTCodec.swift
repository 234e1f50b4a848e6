/// Encodes and decodes MQTT 3.1.1 packets (OASIS MQTT 3.1.1, sections 2 and 3).
///
/// ```
/// Fixed header:   byte 1 = packet type (4 bits) | flags (4 bits)
///                 Remaining Length: 1 to 4 bytes, 7 bits each, continuation in the top bit
/// Strings:        2-byte big-endian length, then UTF-8 (no U+0000)
/// ```
public enum MQTTCodec {
    /// Packets above this size (fixed header included) are refused.
    public static let defaultMaximumPacketSize = 256 * 1024

    // MARK: Encoding

    /// The packet's complete wire bytes (fixed header, remaining length, body).
    public static func encode(_ packet: MQTTPacket) -> [UInt8] {
        var body: [UInt8] = []
        let header: UInt8
        switch packet {
        case .connect(let c):
            header = 0x10
            appendString("MQTT", to: &body)
            body.append(4)  // protocol level 3.1.1
            var flags: UInt8 = c.cleanSession ? 0x02 : 0
            if let will = c.will {
                flags |= 0x04 | (will.qos & 0x03) << 3 | (will.retain ? 0x20 : 0)
            }
            if c.password != nil { flags |= 0x40 }
            if c.username != nil { flags |= 0x80 }
            body.append(flags)
            appendUInt16(c.keepAlive, to: &body)
            appendString(c.clientID, to: &body)
            if let will = c.will {
                appendString(will.topic, to: &body)
                appendBinary(will.message, to: &body)
            }
            if let username = c.username { appendString(username, to: &body) }
            if let password = c.password { appendBinary(password, to: &body) }
        case .connack(let a):
            header = 0x20
            body = [a.sessionPresent ? 1 : 0, a.returnCode]
        case .publish(let p):
            header = 0x30 | (p.dup ? 0x08 : 0) | (p.qos & 0x03) << 1 | (p.retain ? 0x01 : 0)
            appendString(p.topic, to: &body)
            if p.qos > 0 { appendUInt16(p.packetID ?? 0, to: &body) }
            body += p.payload
        case .puback(let id):
            header = 0x40
            appendUInt16(id, to: &body)
        case .subscribe(let s):
            header = 0x82
            appendUInt16(s.packetID, to: &body)
            for filter in s.filters {
                appendString(filter.topic, to: &body)
                body.append(filter.qos)
            }
        case .suback(let s):
            header = 0x90
            appendUInt16(s.packetID, to: &body)
            body += s.returnCodes
        case .unsubscribe(let u):
            header = 0xA2
            appendUInt16(u.packetID, to: &body)
            for topic in u.topics { appendString(topic, to: &body) }
        case .unsuback(let id):
            header = 0xB0
            appendUInt16(id, to: &body)
        case .pingreq: header = 0xC0
        case .pingresp: header = 0xD0
        case .disconnect: header = 0xE0
        }
        var out: [UInt8] = [header]
        var length = body.count
        repeat {
            var byte = UInt8(length % 128)
            length /= 128
            if length > 0 { byte |= 0x80 }
            out.append(byte)
        } while length > 0
        return out + body
    }

    private static func appendUInt16(_ value: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(value >> 8))
        out.append(UInt8(value & 0xFF))
    }

    private static func appendString(_ text: String, to out: inout [UInt8]) {
        appendBinary(Array(text.utf8), to: &out)
    }

    private static func appendBinary(_ bytes: [UInt8], to out: inout [UInt8]) {
        appendUInt16(UInt16(truncatingIfNeeded: bytes.count), to: &out)
        out += bytes
    }

    // MARK: Decoding

    /// Decodes one packet from the start of `bytes`.
    ///
    /// - Returns: the packet and how many bytes it used, or `nil` when more bytes are needed.
    /// - Throws: ``MQTTError`` for anything that is not a valid packet, or one larger than `maximumSize`.
    public static func decode(_ bytes: ArraySlice<UInt8>, maximumSize: Int = defaultMaximumPacketSize) throws
        -> (MQTTPacket, Int)?
    {
        guard let first = bytes.first else { return nil }
        var length = 0
        var multiplier = 1
        var index = bytes.startIndex + 1
        while true {
            guard index < bytes.endIndex else { return nil }
            let byte = bytes[index]
            length += Int(byte & 0x7F) * multiplier
            index += 1
            if byte & 0x80 == 0 { break }
            multiplier *= 128
            guard multiplier <= 128 * 128 * 128 else {
                throw MQTTError(.malformedPacket, "the remaining length uses more than 4 bytes")
            }
        }
        let headerSize = index - bytes.startIndex
        guard headerSize + length <= maximumSize else {
            throw MQTTError(
                .packetTooLarge, "a \(headerSize + length)-byte packet exceeds the \(maximumSize)-byte limit")
        }
        guard bytes.endIndex - index >= length else { return nil }
        var reader = Reader(bytes: bytes[index..<(index + length)])
        let packet = try decodeBody(type: first >> 4, flags: first & 0x0F, reader: &reader)
        guard reader.isAtEnd else { throw MQTTError(.malformedPacket, "trailing bytes after the packet") }
        return (packet, headerSize + length)
    }

    private static func decodeBody(type: UInt8, flags: UInt8, reader: inout Reader) throws -> MQTTPacket {
        func requireFlags(_ expected: UInt8, _ name: String) throws {
            guard flags == expected else { throw MQTTError(.malformedPacket, "\(name) has reserved flags \(flags)") }
        }
        switch type {
        case 1:
            try requireFlags(0, "CONNECT")
            let name = try reader.string()
            let level = try reader.byte()
            guard name == "MQTT" || name == "MQIsdp" else {
                throw MQTTError(.unsupportedProtocol, "protocol name '\(name)'")
            }
            guard level == 4 else { throw MQTTError(.unsupportedProtocol, "protocol level \(level); 3.1.1 is level 4") }
            let connectFlags = try reader.byte()
            guard connectFlags & 0x01 == 0 else {
                throw MQTTError(.malformedPacket, "the reserved CONNECT flag is set")
            }
            let keepAlive = try reader.uint16()
            let clientID = try reader.string()
            var will: MQTTPacket.Connect.Will?
            let willQoS = (connectFlags >> 3) & 0x03
            if connectFlags & 0x04 != 0 {
                guard willQoS < 3 else { throw MQTTError(.malformedPacket, "will QoS 3") }
                will = .init(
                    topic: try reader.string(), message: try reader.binary(), qos: willQoS,
                    retain: connectFlags & 0x20 != 0)
            } else if willQoS != 0 || connectFlags & 0x20 != 0 {
                throw MQTTError(.malformedPacket, "will QoS or retain without a will")
            }
            let username = connectFlags & 0x80 != 0 ? try reader.string() : nil
            if connectFlags & 0x40 != 0 && username == nil {
                throw MQTTError(.malformedPacket, "a password without a user name")
            }
            let password = connectFlags & 0x40 != 0 ? try reader.binary() : nil
            return .connect(
                .init(
                    clientID: clientID, username: username, password: password, keepAlive: keepAlive,
                    cleanSession: connectFlags & 0x02 != 0, will: will))
        case 2:
            try requireFlags(0, "CONNACK")
            let acknowledge = try reader.byte()
            guard acknowledge & 0xFE == 0 else { throw MQTTError(.malformedPacket, "reserved CONNACK flags") }
            return .connack(.init(sessionPresent: acknowledge & 1 == 1, returnCode: try reader.byte()))
        case 3:
            let qos = (flags >> 1) & 0x03
            guard qos < 3 else { throw MQTTError(.malformedPacket, "PUBLISH with QoS 3") }
            let topic = try reader.string()
            guard !topic.contains("+"), !topic.contains("#") else {
                throw MQTTError(.malformedPacket, "wildcards in a PUBLISH topic")
            }
            let packetID = qos > 0 ? try reader.uint16() : nil
            if let packetID, packetID == 0 { throw MQTTError(.malformedPacket, "packet identifier 0") }
            return .publish(
                .init(
                    topic: topic, payload: reader.rest(), qos: qos, retain: flags & 1 == 1, dup: flags & 0x08 != 0,
                    packetID: packetID))
        case 4:
            try requireFlags(0, "PUBACK")
            return .puback(packetID: try reader.uint16())
        case 8:
            try requireFlags(2, "SUBSCRIBE")
            let id = try reader.uint16()
            var filters: [MQTTPacket.Subscribe.Filter] = []
            while !reader.isAtEnd {
                let topic = try reader.string()
                let qos = try reader.byte()
                guard qos < 3 else { throw MQTTError(.malformedPacket, "SUBSCRIBE with QoS \(qos)") }
                filters.append(.init(topic: topic, qos: qos))
            }
            guard !filters.isEmpty else { throw MQTTError(.malformedPacket, "SUBSCRIBE without topic filters") }
            return .subscribe(.init(packetID: id, filters: filters))
        case 9:
            try requireFlags(0, "SUBACK")
            return .suback(.init(packetID: try reader.uint16(), returnCodes: reader.rest()))
        case 10:
            try requireFlags(2, "UNSUBSCRIBE")
            let id = try reader.uint16()
            var topics: [String] = []
            while !reader.isAtEnd { topics.append(try reader.string()) }
            guard !topics.isEmpty else { throw MQTTError(.malformedPacket, "UNSUBSCRIBE without topics") }
            return .unsubscribe(.init(packetID: id, topics: topics))
        case 11:
            try requireFlags(0, "UNSUBACK")
            return .unsuback(packetID: try reader.uint16())
        case 12:
            try requireFlags(0, "PINGREQ")
            return .pingreq
        case 13:
            try requireFlags(0, "PINGRESP")
            return .pingresp
        case 14:
            try requireFlags(0, "DISCONNECT")
            return .disconnect
        case 5, 6, 7:
            throw MQTTError(.unsupportedPacketType, "QoS 2 (PUBREC/PUBREL/PUBCOMP) is not supported")
        default:
            throw MQTTError(.malformedPacket, "packet type \(type)")
        }
    }

    /// Reads the parts of a packet body, refusing to run past its end.
    struct Reader {
        var bytes: ArraySlice<UInt8>

        var isAtEnd: Bool { bytes.isEmpty }

        mutating func byte() throws -> UInt8 {
            guard let first = bytes.first else { throw MQTTError(.malformedPacket, "the packet ends early") }
            bytes = bytes.dropFirst()
            return first
        }

        mutating func uint16() throws -> UInt16 {
            UInt16(try byte()) << 8 | UInt16(try byte())
        }

        mutating func binary() throws -> [UInt8] {
            let count = Int(try uint16())
            guard bytes.count >= count else { throw MQTTError(.malformedPacket, "a field runs past the packet") }
            let value = Array(bytes.prefix(count))
            bytes = bytes.dropFirst(count)
            return value
        }

        /// A UTF-8 string without U+0000 (MQTT 3.1.1 §1.5.3).
        mutating func string() throws -> String {
            let raw = try binary()
            guard let text = String(validating: raw, as: UTF8.self), !text.unicodeScalars.contains("\u{0}") else {
                throw MQTTError(.malformedPacket, "a string is not valid UTF-8")
            }
            return text
        }

        mutating func rest() -> [UInt8] {
            let value = Array(bytes)
            bytes = []
            return value
        }
    }
}
