public import X509

extension Certificate.SerialNumber {
    /// A fresh serial: 20 bytes from the system CSPRNG (159 random bits), positive and minimal
    /// in DER (the first byte is never zero and has its top bit clear).
    public static func random() -> Certificate.SerialNumber {
        var rng = SystemRandomNumberGenerator()
        var bytes = (0..<20).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes[0] = UInt8.random(in: 1...0x7F, using: &rng)
        return Certificate.SerialNumber(bytes: bytes[...])
    }

    /// Lower-case hexadecimal without separators: the form Keygate stores and prints.
    public var hex: String {
        Hex.encode(bytes)
    }

    /// Parses hexadecimal, with or without `:` separators, as `openssl` prints it.
    public init?(hex text: String) {
        let digits = text.lowercased().filter { $0 != ":" }
        guard !digits.isEmpty, digits.count % 2 == 0, digits.count <= 42 else { return nil }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        while bytes.count > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 { bytes.removeFirst() }
        self.init(bytes: bytes[...])
    }
}
