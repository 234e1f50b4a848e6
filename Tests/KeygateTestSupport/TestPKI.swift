import Crypto
import CryptoExtras
import Foundation
public import KeygatePKI
import SwiftASN1
public import X509

/// A throwaway CA for tests: a root and an issuing CA with keys in memory.
public struct TestPKI: Sendable {
    public let root: CertificateAuthority
    public let issuing: CertificateAuthority
    public let revocation = RevocationPointers(baseURL: "http://127.0.0.1:8080")

    public static func make(_ algorithm: KeyAlgorithm = .p256) async throws -> TestPKI {
        let root = try await CertificateAuthority.makeRoot(
            name: "Test Root CA", organization: "Keygate Tests", signer: try SoftwareSigner.generate(algorithm))
        let issuing = try await root.makeSubordinate(
            name: "Test Issuing CA", organization: "Keygate Tests", signer: try SoftwareSigner.generate(algorithm))
        return TestPKI(root: root, issuing: issuing)
    }

    /// Writes root, issuing and the chain as PEM files into `directory`.
    public func writeFiles(into directory: TemporaryDirectory) throws -> (root: String, issuing: String, chain: String)
    {
        (
            try directory.write("root.pem", try root.certificate.pemString),
            try directory.write("issuing.pem", try issuing.certificate.pemString),
            try directory.write("chain.pem", issuing.chainPEM)
        )
    }
}

/// CSRs for tests.
public enum TestCSR {
    /// A CSR (PEM) for a fresh key of `algorithm`, asking for `commonName` and a SAN it should not get.
    public static func make(_ algorithm: KeyAlgorithm = .p256, commonName: String = "csr-asks-for-this") throws -> (
        pem: String, der: [UInt8], key: Certificate.PrivateKey
    ) {
        let key = try algorithm.generatePrivateKey()
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames([.dnsName("attacker.example")])
        }
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(commonName) }, privateKey: key,
            attributes: try CertificateSigningRequest.Attributes([.init(ExtensionRequest(extensions: extensions))]))
        return (try csr.serializeAsPEM().pemString, try csr.derBytes, key)
    }
}

extension Certificate {
    /// The PEM of several certificates, concatenated.
    public static func pem(_ certificates: [Certificate]) throws -> String {
        try certificates.map { try $0.pemString }.joined(separator: "\n") + "\n"
    }
}

/// The code of the `KeygateError` that `body` throws, or `"none"` / `"other: …"`.
public func errorCode(_ body: () async throws -> Void) async -> String {
    do {
        try await body()
        return "none"
    } catch let error as KeygateError {
        return error.code.rawValue
    } catch {
        return "other: \(error)"
    }
}
