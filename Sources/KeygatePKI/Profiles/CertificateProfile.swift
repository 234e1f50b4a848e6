public import Foundation
import X509

/// What a certificate of a kind looks like: lifetime, key usages, names and revocation pointers.
///
/// Profiles decide; a CSR only supplies the public key. Built-in profiles: ``device`` (TLS client,
/// the identity a device presents to DPS and IoT Hub) and ``server`` (TLS server).
public struct CertificateProfile: Sendable, Hashable, Codable {
    /// What the certificate authenticates: a device as TLS client (`"device"`) or a TLS server.
    public enum Purpose: String, Sendable, Hashable, Codable {
        case deviceClient = "device"
        case server
    }

    /// The profile's name, as used on the command line and in the API.
    public var name: String
    /// Decides the extended key usage (clientAuth or serverAuth) and whether a SAN is required.
    public var purpose: Purpose
    /// Validity in seconds, counted from the moment of issuance (not from the backdated `notBefore`).
    public var validitySeconds: Int64
    /// Key algorithms a CSR may carry.
    public var allowedKeyAlgorithms: Set<KeyAlgorithm>
    /// Whether to include the CRL distribution point and the AIA OCSP URL.
    public var includeRevocationPointers: Bool

    /// Creates a profile; by default every ``KeyAlgorithm`` is allowed and revocation pointers are included.
    public init(
        name: String,
        purpose: Purpose,
        validitySeconds: Int64,
        allowedKeyAlgorithms: Set<KeyAlgorithm> = Set(KeyAlgorithm.allCases),
        includeRevocationPointers: Bool = true
    ) {
        self.name = name
        self.purpose = purpose
        self.validitySeconds = validitySeconds
        self.allowedKeyAlgorithms = allowedKeyAlgorithms
        self.includeRevocationPointers = includeRevocationPointers
    }

    /// A device's TLS client identity: one year, CN = device ID, clientAuth.
    public static let device = CertificateProfile(name: "device", purpose: .deviceClient, validitySeconds: 365 * 86_400)
    /// A TLS server: 90 days, DNS and IP SANs, serverAuth.
    public static let server = CertificateProfile(name: "server", purpose: .server, validitySeconds: 90 * 86_400)

    /// The profiles ``named(_:)`` knows: ``device`` and ``server``.
    public static let builtIn: [CertificateProfile] = [.device, .server]

    /// Looks a built-in profile up by name; throws `unknownProfile` with the choices otherwise.
    public static func named(_ name: String) throws -> CertificateProfile {
        guard let profile = builtIn.first(where: { $0.name == name }) else {
            let names = builtIn.map(\.name).joined(separator: ", ")
            throw KeygateError(.unknownProfile, "no certificate profile '\(name)'; known profiles: \(names)")
        }
        return profile
    }

    /// How far `notBefore` is moved into the past so that devices with a slow clock accept the certificate.
    public static let clockSkewAllowance: TimeInterval = 5 * 60

    /// The extensions of a certificate issued under this profile.
    func extensions(
        subjectKey: Certificate.PublicKey,
        keyAlgorithm: KeyAlgorithm,
        identity: CertificateIdentity,
        issuerKeyIdentifier: ArraySlice<UInt8>,
        revocation: RevocationPointers?
    ) throws -> Certificate.Extensions {
        var extensions = Certificate.Extensions()
        try extensions.append(Certificate.Extension(BasicConstraints.notCertificateAuthority, critical: true))
        // RSA keys may be used for key transport in TLS 1.2 servers; EC and Ed25519 keys only sign.
        let keyUsage =
            (purpose == .server && keyAlgorithm == .rsa3072)
            ? KeyUsage(digitalSignature: true, keyEncipherment: true)
            : KeyUsage(digitalSignature: true)
        try extensions.append(Certificate.Extension(keyUsage, critical: true))
        let usages: [ExtendedKeyUsage.Usage] = purpose == .server ? [.serverAuth] : [.clientAuth]
        try extensions.append(Certificate.Extension(try ExtendedKeyUsage(usages), critical: false))
        try extensions.append(Certificate.Extension(SubjectKeyIdentifier(hash: subjectKey), critical: false))
        try extensions.append(
            Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: issuerKeyIdentifier), critical: false))
        let names = identity.generalNames
        if !names.isEmpty {
            try extensions.append(Certificate.Extension(SubjectAlternativeNames(names), critical: false))
        }
        if includeRevocationPointers, let revocation {
            try extensions.append(
                Certificate.Extension(
                    AuthorityInformationAccess([
                        .init(method: .ocspServer, location: .uniformResourceIdentifier(revocation.ocspURL))
                    ]),
                    critical: false
                )
            )
            try extensions.append(revocation.crlDistributionPointsExtension())
        }
        return extensions
    }
}
