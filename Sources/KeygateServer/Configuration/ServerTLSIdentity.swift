import KeygateHTTP
import Crypto
import Foundation
import KeygateDomain
import KeygatePKI
import KeygateStore
import NIOSSL
import X509

/// The HTTPS listener's own certificate, issued by the issuing CA for 127.0.0.1, ::1
/// and the hosts given to `init`. `serve` renews it when it has less than 30 days left.
struct ServerTLSIdentity {
    let directory: DataDirectory
    let configuration: ServerConfiguration

    static let validity: TimeInterval = 397 * 86_400
    static let renewalMargin: TimeInterval = 30 * 86_400

    func issue(authority: CertificateAuthority, hosts: [String], store: any CertificateRecordStore) async throws {
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("keygate") },
            privateKey: Certificate.PrivateKey(key), attributes: .init())
        let checked = try CSRPolicy().check(try csr.derBytes)
        // "localhost" is left out on purpose: a single-label name is not a valid DNS SAN (RFC 5280
        // linters reject it); local clients use 127.0.0.1 or ::1.
        var dnsNames: [String] = []
        var addresses = ["127.0.0.1", "::1"]
        for host in hosts {
            if isIPAddress(host) { addresses.append(host) } else { dnsNames.append(host) }
        }
        let identity = CertificateIdentity(
            commonName: hosts.first(where: { !isIPAddress($0) }) ?? "Keygate server", dnsNames: unique(dnsNames),
            ipAddresses: unique(addresses))
        let certificate = try await authority.issue(
            csr: checked, profile: .server, identity: identity,
            revocation: RevocationPointers(baseURL: configuration.publicBaseURL), validity: Self.validity)
        let pem = try certificate.pemString
        try await store.insertCertificate(
            CertificateRecord(
                serial: certificate.serialNumber.hex, subject: certificate.subject.description,
                issuer: authority.certificate.subject.description, notBefore: certificate.notValidBefore,
                notAfter: certificate.notValidAfter, profile: CertificateProfile.server.name, pem: pem),
            audit: .init(
                actor: "system", action: "certificate.issued", subject: certificate.serialNumber.hex,
                details: ["profile": "server", "purpose": "https-listener"]))
        try directory.write(Data(key.pemRepresentation.utf8), to: configuration.tlsKey, mode: 0o600)
        try directory.write(
            Data((pem + authority.chainPEM).utf8), to: configuration.tlsCertificate, mode: 0o644)
    }

    /// Renews the listener certificate if it is close to expiry, keeping its names.
    func renewIfNeeded(authority: CertificateAuthority, store: any CertificateRecordStore, now: Date = Date())
        async throws
    {
        let current = try directory.readCertificates(configuration.tlsCertificate).first
        guard let current, current.notValidAfter.timeIntervalSince(now) < Self.renewalMargin else { return }
        let names = (try? current.extensions.subjectAlternativeNames) ?? SubjectAlternativeNames([])
        var hosts: [String] = []
        for name in names {
            if case .dnsName(let dns) = name { hosts.append(dns) }
        }
        try await issue(authority: authority, hosts: hosts, store: store)
    }

    func tlsConfiguration() throws -> TLSConfiguration {
        try TLSListener.configuration(
            chainFile: directory.path(configuration.tlsCertificate), keyFile: directory.path(configuration.tlsKey))
    }

    private func isIPAddress(_ host: String) -> Bool {
        host.contains(":")
            || host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }

    private func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
