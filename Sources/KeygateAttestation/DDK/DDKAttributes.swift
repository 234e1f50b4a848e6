import Crypto
import Foundation

/// The named byte strings a DDK identity is derived from (`machine-id`, `mac:eth0`, ...).
public struct DDKAttributes: Sendable, Hashable {
    /// Attribute values by name; every name and value goes into the fingerprint, so any change gives new keys.
    public var values: [String: [UInt8]]

    /// Creates attributes from raw byte values.
    public init(_ values: [String: [UInt8]] = [:]) {
        self.values = values
    }

    /// Creates attributes from text values, stored as their UTF-8 bytes.
    public init(strings: [String: String]) {
        self.values = strings.mapValues { Array($0.utf8) }
    }

    /// The attribute names in the order ``canonicalBytes`` encodes them (sorted).
    public var names: [String] { values.keys.sorted() }

    /// `canonical(attributes)`: sorted by name, each `len(name) ‖ name ‖ len(value) ‖ value` with
    /// 4-byte big-endian lengths.
    public var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        for name in names {
            DDKEncoding.appendLengthPrefixed(Array(name.utf8), to: &out)
            DDKEncoding.appendLengthPrefixed(values[name]!, to: &out)
        }
        return out
    }

    /// `F = SHA-256(canonical(attributes))`.
    public var fingerprint: [UInt8] { Array(SHA256.hash(data: canonicalBytes)) }
}

enum DDKEncoding {
    static func appendLengthPrefixed(_ bytes: [UInt8], to out: inout [UInt8]) {
        let n = UInt32(bytes.count)
        out += [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
        out += bytes
    }

    static func uint64(_ value: UInt64) -> [UInt8] {
        (0..<8).reversed().map { UInt8((value >> (UInt64($0) * 8)) & 0xFF) }
    }

    /// Length-prefixes every part and concatenates them.
    static func message(_ parts: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts { appendLengthPrefixed(part, to: &out) }
        return out
    }
}
