import Foundation
import KeygatePKI
import KeygateTestSupport
import SwiftASN1
import Testing
import X509

@Suite struct IssuanceTests {
    @Test(.tags(.outsideTool), .fullRunOnly, arguments: KeyAlgorithm.allCases)
    func deviceCertificateVerifiesWithOpenSSLAndLintsClean(_ algorithm: KeyAlgorithm) async throws {
        guard ExternalTool.available("openssl") else { return }
        let pki = try await TestPKI.make(algorithm)
        let csr = try TestCSR.make(.p256)
        let checked = try CSRPolicy().check(Array(csr.pem.utf8))
        let device = try await pki.issuing.issue(
            csr: checked, profile: .device, identity: .init(commonName: "sensor-17"), revocation: pki.revocation)
        let server = try await pki.issuing.issue(
            csr: try CSRPolicy().check(try TestCSR.make(.p256).der), profile: .server,
            identity: .init(
                commonName: "keygate.example", dnsNames: ["keygate.example"], ipAddresses: ["127.0.0.1", "::1"]),
            revocation: pki.revocation)

        let dir = try TemporaryDirectory("issuance")
        let files = try pki.writeFiles(into: dir)
        let devicePath = try dir.write("device.pem", try device.pemString)
        let serverPath = try dir.write("server.pem", try server.pemString)
        for leaf in [devicePath, serverPath] {
            let verify = try await ExternalTool.openssl.run([
                "verify", "-CAfile", files.root, "-untrusted", files.issuing, leaf,
            ])
            #expect(verify.status == 0, "openssl verify: \(verify.combined)")
            #expect(verify.stdout.contains(": OK"))
        }

        guard ExternalTool.available("lint_pkix_cert") else { return }
        let lint = try ExternalTool.require("lint_pkix_cert")
        for file in [files.root, files.issuing, devicePath, serverPath] {
            let result = try await lint.run(["lint", "-s", "WARNING", file])
            #expect(
                result.status == 0 && result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                "pkilint on \(file) (\(algorithm)): \(result.combined)")
        }
        let chainLint = try ExternalTool.require("lint_pkix_signer_signee_cert_chain")
        for (issuer, subject) in [
            (files.root, files.issuing), (files.issuing, devicePath), (files.issuing, serverPath),
        ] {
            let result = try await chainLint.run(["lint", "-s", "WARNING", issuer, subject])
            #expect(
                result.status == 0 && result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                "chain lint \(subject): \(result.combined)")
        }
    }

    @Test func theCSRCannotChooseItsIdentity() async throws {
        let pki = try await TestPKI.make()
        let csr = try TestCSR.make(commonName: "admin-of-everything")
        let certificate = try await pki.issuing.issue(
            csr: try CSRPolicy().check(csr.der), profile: .device, identity: .init(commonName: "sensor-17"),
            revocation: pki.revocation)
        #expect(certificate.subject.description == "CN=sensor-17")
        // The CSR asked for a DNS SAN; a device certificate gets none.
        #expect(try certificate.extensions.subjectAlternativeNames == nil)
        #expect(certificate.publicKey == csr.key.publicKey)
    }

    @Test func serialsAreLongPositiveAndUnique() async throws {
        let pki = try await TestPKI.make()
        var serials = Set<String>()
        for _ in 0..<50 {
            let certificate = try await pki.issuing.issue(
                csr: try CSRPolicy().check(try TestCSR.make().der), profile: .device,
                identity: .init(commonName: "d"), revocation: nil)
            let bytes = Array(certificate.serialNumber.bytes)
            #expect(bytes.count >= 16)
            #expect(bytes[0] & 0x80 == 0, "serial must be positive")
            #expect(bytes[0] != 0, "serial must be minimally encoded")
            serials.insert(certificate.serialNumber.hex)
        }
        #expect(serials.count == 50)
    }

    @Test func validityIsBackdatedAndExtensionsArePresent() async throws {
        let pki = try await TestPKI.make()
        let now = Date()
        let certificate = try await pki.issuing.issue(
            csr: try CSRPolicy().check(try TestCSR.make().der), profile: .device, identity: .init(commonName: "d"),
            revocation: pki.revocation, now: now)
        #expect(abs(certificate.notValidBefore.timeIntervalSince(now - CertificateProfile.clockSkewAllowance)) < 2)
        #expect(abs(certificate.notValidAfter.timeIntervalSince(now + 365 * 86_400)) < 2)
        let ski = try #require(try certificate.extensions.subjectKeyIdentifier)
        #expect(ski.keyIdentifier == SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier)
        let aki = try #require(try certificate.extensions.authorityKeyIdentifier)
        #expect(aki.keyIdentifier == pki.issuing.keyIdentifier)
        let usage = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(usage.contains(.clientAuth))
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
    }

    @Test func profileKeyAlgorithmsAreEnforced() async throws {
        let pki = try await TestPKI.make()
        var profile = CertificateProfile.device
        profile.allowedKeyAlgorithms = [.p256]
        let checked = try CSRPolicy().check(try TestCSR.make(.p384).der)
        let code = await errorCode {
            _ = try await pki.issuing.issue(
                csr: checked, profile: profile, identity: .init(commonName: "d"), revocation: nil)
        }
        #expect(code == "keyAlgorithmNotAllowed")
    }

    @Test func serverCertificatesNeedNames() async throws {
        let pki = try await TestPKI.make()
        let checked = try CSRPolicy().check(try TestCSR.make().der)
        let code = await errorCode {
            _ = try await pki.issuing.issue(
                csr: checked, profile: .server, identity: .init(commonName: "x"), revocation: nil)
        }
        #expect(code == "invalidSubject")
    }
}
