/// PEM encoding (RFC 7468): base64 in 64-character lines between BEGIN and END lines.
public enum PEM {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Wraps `der` in `-----BEGIN label-----` and `-----END label-----` lines; the result ends in a newline.
    public static func encode(label: String, der: [UInt8]) -> String {
        var out: [UInt8] = Array("-----BEGIN \(label)-----\n".utf8)
        out.reserveCapacity(der.count * 4 / 3 + der.count / 48 + 64)
        var column = 0
        var index = 0
        func emit(_ byte: UInt8) {
            out.append(byte)
            column += 1
            if column == 64 {
                out.append(0x0A)
                column = 0
            }
        }
        while index + 3 <= der.count {
            let n = UInt32(der[index]) << 16 | UInt32(der[index + 1]) << 8 | UInt32(der[index + 2])
            emit(alphabet[Int(n >> 18 & 63)])
            emit(alphabet[Int(n >> 12 & 63)])
            emit(alphabet[Int(n >> 6 & 63)])
            emit(alphabet[Int(n & 63)])
            index += 3
        }
        let rest = der.count - index
        if rest > 0 {
            let n = UInt32(der[index]) << 16 | (rest == 2 ? UInt32(der[index + 1]) << 8 : 0)
            emit(alphabet[Int(n >> 18 & 63)])
            emit(alphabet[Int(n >> 12 & 63)])
            emit(rest == 2 ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            emit(UInt8(ascii: "="))
        }
        if column != 0 { out.append(0x0A) }
        out += Array("-----END \(label)-----\n".utf8)
        return String(decoding: out, as: UTF8.self)
    }
}
