import Foundation

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

    /// The DER of every block in `text` labelled `label` (any label when `nil`), in order; blocks whose
    /// base64 does not decode are left out.
    public static func blocks(in text: String, label: String? = nil) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var body: String?
        for line in text.split(whereSeparator: \.isNewline) {
            let line = line.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                let found = String(line.dropFirst(11).dropLast(5))
                body = label == nil || found == label ? "" : nil
            } else if line.hasPrefix("-----END ") {
                if let body, let data = Data(base64Encoded: body) { result.append(Array(data)) }
                body = nil
            } else if body != nil {
                body! += line
            }
        }
        return result
    }
}
