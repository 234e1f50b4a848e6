// The MQTT 3.1.1 decoder (KeygateMQTT), which reads whatever a device (sandbox, server side) or a
// broker (agent, client side) sends. The input is a byte stream: it is decoded packet by packet with
// `MQTTCodec.decode`, and fed in chunks through `MQTTPacketDecoder` in an `EmbeddedChannel` (no
// network); both must see the same packets, and every packet must survive an encode/decode round trip.
import FuzzSupport
import KeygateMQTT
import NIOCore
import NIOEmbedded

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)

    // 1. The codec, packet after packet, until it needs more bytes or throws.
    var decoded: [MQTTPacket] = []
    var rest = bytes[...]
    do {
        while let (packet, used) = try MQTTCodec.decode(rest) {
            fuzzCheck(used > 0 && used <= rest.count, "decode used \(used) of \(rest.count) bytes")
            decoded.append(packet)
            rest = rest.dropFirst(used)
            let wire = MQTTCodec.encode(packet)
            let again = try? MQTTCodec.decode(wire[...], maximumSize: .max)
            fuzzCheck(again?.0 == packet && again?.1 == wire.count, "\(packet) does not survive encode and decode")
        }
    } catch {}

    // 2. The channel handler, fed in chunks of 1 to 64 bytes (chosen by the first byte) or all at once.
    let chunkSizes = [1, 2, 3, 7, 64, Int.max]
    let chunkSize = chunkSizes[Int(bytes.first ?? 0) % chunkSizes.count]
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(MQTTPacketDecoder()))
    var framed: [MQTTPacket] = []
    func drain() {
        while let packet = try? channel.readInbound(as: MQTTPacket.self) { framed.append(packet) }
    }
    var start = 0
    do {
        while start < bytes.count {
            let end = start + min(chunkSize, bytes.count - start)
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes[start..<end]))
            drain()
            start = end
        }
    } catch {
        drain()
    }
    _ = try? channel.finish()
    fuzzCheck(
        framed == decoded,
        "the channel decoder framed \(framed.count) packets, the codec \(decoded.count): \(framed) vs \(decoded)")
    return 0
}
