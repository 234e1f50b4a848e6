import Foundation
import SwiftASN1
import X509

/// The names Keygate puts into a certificate. They come from Keygate's own records (the device ID,
/// the server's host names), never from the CSR.
public struct CertificateIdentity: Sendable, Hashable, Codable {
    /// The subject CN (the device ID for device certificates): 1 to 64 printable ASCII characters.
    public var commonName: String
    /// DNS SubjectAltNames (`*` wildcards allowed); a server certificate needs one or an IP address.
    public var dnsNames: [String]
    /// IP SubjectAltNames in IPv4 dotted or IPv6 text form, encoded as 4 or 16 octets.
    public var ipAddresses: [String]

    /// Creates an identity; the names are checked by ``validate(for:)`` when a certificate is issued.
    public init(commonName: String, dnsNames: [String] = [], ipAddresses: [String] = []) {
        self.commonName = commonName
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
    }

    /// Checks the names: a common name of 1 to 64 printable characters, DNS names of letters,
    /// digits, `-` and `.`, and IP addresses in textual form.
    public func validate(for purpose: CertificateProfile.Purpose) throws {
        guard !commonName.isEmpty, commonName.count <= 64 else {
            throw KeygateError(.invalidSubject, "the common name must be 1 to 64 characters")
        }
        guard commonName.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) else {
            throw KeygateError(.invalidSubject, "the common name must be printable ASCII")
        }
        for name in dnsNames {
            let allowed = name.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-"
                    || $0 == "."
                    || $0 == "*"
            }
            guard allowed, !name.isEmpty, name.count <= 253 else {
                throw KeygateError(.invalidSubject, "'\(name)' is not a DNS name")
            }
        }
        for address in ipAddresses where IPAddressBytes(address) == nil {
            throw KeygateError(.invalidSubject, "'\(address)' is not an IP address")
        }
        if purpose == .server && dnsNames.isEmpty && ipAddresses.isEmpty {
            throw KeygateError(.invalidSubject, "a server certificate needs at least one DNS name or IP address")
        }
    }

    var subject: DistinguishedName {
        get throws {
            try DistinguishedName { CommonName(commonName) }
        }
    }

    var generalNames: [GeneralName] {
        dnsNames.map { GeneralName.dnsName($0) }
            + ipAddresses.compactMap { IPAddressBytes($0).map { GeneralName.ipAddress(.init(contentBytes: $0[...])) } }
    }
}

/// The octets of an IPv4 or IPv6 address, or `nil` when `text` is neither.
func IPAddressBytes(_ text: String) -> [UInt8]? {
    let v4 = text.split(separator: ".", omittingEmptySubsequences: false)
    if v4.count == 4 {
        let octets = v4.compactMap { UInt8($0) }
        return octets.count == 4 ? octets : nil
    }
    guard text.contains(":") else { return nil }
    // IPv6: up to eight groups, one "::" allowed.
    let halves = text.components(separatedBy: "::")
    guard halves.count <= 2 else { return nil }
    func groups(_ part: String) -> [UInt16]? {
        if part.isEmpty { return [] }
        let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
        let values = pieces.compactMap { $0.count <= 4 ? UInt16($0, radix: 16) : nil }
        return values.count == pieces.count ? values : nil
    }
    guard let head = groups(halves[0]) else { return nil }
    var all = head
    if halves.count == 2 {
        guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
        all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
    }
    guard all.count == 8 else { return nil }
    return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
}
