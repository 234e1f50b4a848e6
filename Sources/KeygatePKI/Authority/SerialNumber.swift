public import X509

extension Certificate.SerialNumber {
    /// A fresh serial: 20 bytes from the system CSPRNG (159 random bits), positive and minimal
    /// in DER (the first byte is never zero and has its top bit clear).
    public static func random() -> Certificate.SerialNumber {
        // Three 64-bit draws (three getrandom calls), not one per byte: issuance makes thousands a second.
        var rng = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        for _ in 0..<3 { withUnsafeBytes(of: rng.next()) { bytes += $0 } }
        bytes.removeLast(4)
        bytes[0] = 1 + bytes[0] % 0x7F
        return Certificate.SerialNumber(bytes: bytes[...])
    }

    /// Lower-case hexadecimal without separators: the form Keygate stores and prints.
    public var hex: String {
        Hex.encode(bytes)
    }

    /// Parses hexadecimal, with or without `:` separators, as `openssl` prints it.
    public init?(hex text: String) {
        // On UTF-8 bytes: the CRL builder parses one serial per revoked certificate.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(21)
        var high: UInt8?
        var digits = 0
        for unit in text.utf8 where unit != UInt8(ascii: ":") {
            let value: UInt8
            switch unit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = unit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = unit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = unit - UInt8(ascii: "A") + 10
            default: return nil
            }
            digits += 1
            guard digits <= 42 else { return nil }
            if let first = high {
                bytes.append(first << 4 | value)
                high = nil
            } else {
                high = value
            }
        }
        guard digits > 0, high == nil else { return nil }
        while bytes.count > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 { bytes.removeFirst() }
        self.init(bytes: bytes[...])
    }
}
