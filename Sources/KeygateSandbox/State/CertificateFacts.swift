import Crypto
import Foundation
import KeygatePKI
import SwiftASN1
import X509

/// What DPS and IoT Hub say about a certificate: thumbprints and the `info` block of an attestation.
struct CertificateFacts {
    let certificate: Certificate
    let der: [UInt8]

    /// Reads a PEM certificate or base64 DER (IoT Central sends either).
    init?(text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-----BEGIN"), let parsed = try? Certificate(pemEncoded: trimmed) {
            certificate = parsed
            der = (try? parsed.serializeAsPEM().derBytes) ?? []
        } else if let data = Data(base64Encoded: trimmed), let parsed = try? Certificate(derEncoded: Array(data)) {
            certificate = parsed
            der = Array(data)
        } else {
            return nil
        }
    }

    init?(der: [UInt8]) {
        guard let parsed = try? Certificate(derEncoded: der) else { return nil }
        certificate = parsed
        self.der = der
    }

    var sha1Thumbprint: String { Hex.encode(Insecure.SHA1.hash(data: der), uppercase: true) }
    var sha256Thumbprint: String { Hex.encode(SHA256.hash(data: der), uppercase: true) }
    var commonName: String? {
        certificate.subject.flatMap { $0 }.first { $0.type == .RDNAttributeType.commonName }.map {
            String(describing: $0.value)
        }
    }

    /// The `info` DPS fills in for an attestation certificate.
    var info: JSONValue {
        let formatter = ISO8601DateFormatter()
        return .object([
            "subjectName": .string(certificate.subject.description),
            "sha1Thumbprint": .string(sha1Thumbprint),
            "sha256Thumbprint": .string(sha256Thumbprint),
            "issuerName": .string(certificate.issuer.description),
            "notBeforeUtc": .string(formatter.string(from: certificate.notValidBefore)),
            "notAfterUtc": .string(formatter.string(from: certificate.notValidAfter)),
            "serialNumber": .string(Hex.encode(certificate.serialNumber.bytes, uppercase: true)),
            "version": .number(3),
        ])
    }

    /// Whether `leaf` was signed by this (CA) certificate's key and names it as issuer.
    func issued(_ leaf: Certificate) -> Bool {
        leaf.issuer == certificate.subject && certificate.publicKey.isValidSignature(leaf.signature, for: leaf)
    }

    /// Whether the leaf is within its validity period.
    static func isCurrent(_ leaf: Certificate, now: Date = Date()) -> Bool {
        leaf.notValidBefore <= now && now <= leaf.notValidAfter
    }
}
