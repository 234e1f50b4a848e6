import Foundation
import KeygatePKI
import KeygateTestSupport
import Testing
import X509

@Suite struct RevocationTests {
    struct Fixture {
        let pki: TestPKI
        let dir: TemporaryDirectory
        let files: (root: String, issuing: String, chain: String)
        let revoked: Certificate
        let held: Certificate
        let good: Certificate

        static func make(_ algorithm: KeyAlgorithm = .p256) async throws -> Fixture {
            let pki = try await TestPKI.make(algorithm)
            let dir = try TemporaryDirectory("revocation")
            func issue(_ name: String) async throws -> Certificate {
                try await pki.issuing.issue(
                    csr: try CSRPolicy().check(try TestCSR.make().der), profile: .device,
                    identity: .init(commonName: name),
                    revocation: pki.revocation)
            }
            return Fixture(
                pki: pki, dir: dir, files: try pki.writeFiles(into: dir), revoked: try await issue("revoked"),
                held: try await issue("held"), good: try await issue("good"))
        }

        func crl(now: Date = Date()) async throws -> [UInt8] {
            try await CRLBuilder(authority: pki.issuing).build(
                number: 7, thisUpdate: now, nextUpdate: now + 86_400,
                entries: [
                    RevokedEntry(serialNumber: revoked.serialNumber, revokedAt: now - 60, reason: .keyCompromise),
                    RevokedEntry(serialNumber: held.serialNumber, revokedAt: now - 30, reason: .certificateHold),
                ])
        }
    }

    @Test(.tags(.outsideTool), .fullRunOnly, arguments: [KeyAlgorithm.p256, .p384, .rsa3072, .ed25519])
    func crlVerifiesListsReasonsAndLintsClean(_ algorithm: KeyAlgorithm) async throws {
        guard ExternalTool.available("openssl") else { return }
        let f = try await Fixture.make(algorithm)
        let crlPath = try f.dir.write("crl.der", Data(try await f.crl()))
        let openssl = try ExternalTool.openssl
        let text = try await openssl.run([
            "crl", "-inform", "DER", "-in", crlPath, "-noout", "-text", "-CAfile", f.files.chain,
        ])
        #expect(text.combined.contains("verify OK"), "\(text.combined)")
        #expect(text.stdout.contains(f.revoked.serialNumber.hex.uppercased()))
        #expect(text.stdout.contains("Key Compromise"))
        #expect(text.stdout.contains("Certificate Hold"))
        #expect(text.stdout.contains("X509v3 CRL Number"))
        #expect(text.stdout.contains("X509v3 Authority Key Identifier"))
        #expect(!text.stdout.contains(f.good.serialNumber.hex.uppercased()))

        // openssl verify -crl_check refuses the revoked certificate and accepts the good one.
        try await openssl.run(["crl", "-inform", "DER", "-in", crlPath, "-out", f.dir.file("crl.pem")])
        let bundle = try f.dir.write("bundle.pem", try f.dir.read("chain.pem") + (try f.dir.read("crl.pem")))
        let revokedPath = try f.dir.write("revoked.pem", try f.revoked.pemString)
        let goodPath = try f.dir.write("good.pem", try f.good.pemString)
        let refused = try await openssl.run(["verify", "-crl_check", "-CAfile", bundle, revokedPath])
        #expect(refused.status != 0 && refused.combined.contains("revoked"), "\(refused.combined)")
        let accepted = try await openssl.run(["verify", "-crl_check", "-CAfile", bundle, goodPath])
        #expect(accepted.status == 0, "\(accepted.combined)")

        guard ExternalTool.available("lint_crl") else { return }
        let lint = try await ExternalTool.require("lint_crl").run([
            "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", f.dir.file("crl.pem"),
        ])
        #expect(
            lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint.combined)")
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func emptyCRLIsValid() async throws {
        guard ExternalTool.available("openssl") else { return }
        let f = try await Fixture.make()
        let crl = try await CRLBuilder(authority: f.pki.issuing).build(
            number: 1, thisUpdate: Date(), nextUpdate: Date() + 3600, entries: [])
        let path = try f.dir.write("empty.der", Data(crl))
        let text = try await ExternalTool.openssl.run([
            "crl", "-inform", "DER", "-in", path, "-noout", "-text", "-CAfile", f.files.chain,
        ])
        #expect(text.combined.contains("verify OK"))
        #expect(text.stdout.contains("No Revoked Certificates"))
    }

    /// openssl builds the request (with a nonce), Keygate answers, openssl verifies the answer.
    @Test(.tags(.outsideTool), .fullRunOnly) func ocspAnswersGoodRevokedAndUnknownWithNonce() async throws {
        guard ExternalTool.available("openssl") else { return }
        let f = try await Fixture.make()
        let responder = try OCSPResponder(authority: f.pki.issuing)
        let openssl = try ExternalTool.openssl
        let statuses: [String: OCSPCertificateStatus] = [
            f.good.serialNumber.hex: .good,
            f.revoked.serialNumber.hex: .revoked(at: Date() - 120, reason: .keyCompromise),
        ]
        let cases: [(String, String)] = [
            (f.good.serialNumber.hex, "Cert Status: good"),
            (f.revoked.serialNumber.hex, "Cert Status: revoked"),
            ("0123456789abcdef0123456789abcdef", "Cert Status: unknown"),
        ]
        for (index, (serial, expected)) in cases.enumerated() {
            let request = f.dir.file("req\(index).der")
            try await openssl.run(["ocsp", "-issuer", f.files.issuing, "-serial", "0x" + serial, "-reqout", request])
            let answer = await responder.respond(to: Array(try Data(contentsOf: URL(fileURLWithPath: request)))) {
                serialNumber in
                statuses[serialNumber.hex] ?? .unknown
            }
            let response = try f.dir.write("resp\(index).der", Data(answer))
            let checked = try await openssl.run([
                // -reqin without -serial: openssl checks the answer against this request's nonce.
                "ocsp", "-issuer", f.files.issuing, "-reqin", request, "-respin", response,
                "-CAfile", f.files.chain, "-resp_text",
            ])
            #expect(checked.combined.contains("Response verify OK"), "\(checked.combined)")
            #expect(checked.stdout.contains(expected), "\(checked.stdout)")
            #expect(!checked.combined.contains("WARNING: no nonce"), "nonce must be echoed")
            #expect(!checked.combined.contains("Nonce Verify error"))
            #expect(checked.stdout.contains("OCSP Nonce"))
            if expected.hasSuffix("revoked") {
                #expect(checked.stdout.contains("keyCompromise"))
            }
            if ExternalTool.available("lint_ocsp_response") {
                let lint = try await ExternalTool.require("lint_ocsp_response").run(["lint", "-s", "WARNING", response])
                #expect(
                    lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                    "\(lint.combined)")
            }
        }
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func ocspRefusesGarbageAndForeignIssuers() async throws {
        let f = try await Fixture.make()
        let responder = try OCSPResponder(authority: f.pki.issuing)
        let garbage = await responder.respond(to: [0x30, 0x03, 0x02, 0x01]) { _ in .good }
        #expect(garbage == OCSPResponder.unsignedResponse(.malformedRequest))

        guard ExternalTool.available("openssl") else { return }
        let other = try await TestPKI.make()
        let otherIssuer = try f.dir.write("other.pem", try other.issuing.certificate.pemString)
        try await ExternalTool.openssl.run([
            "ocsp", "-issuer", otherIssuer, "-serial", "0x01", "-reqout", f.dir.file("foreign.der"),
        ])
        let foreign = await responder.respond(
            to: Array(try Data(contentsOf: URL(fileURLWithPath: f.dir.file("foreign.der"))))
        ) {
            _ in .good
        }
        #expect(foreign == OCSPResponder.unsignedResponse(.unauthorized))
    }

    @Test func revocationReasonsParseByName() throws {
        #expect(try RevocationReason(name: "keyCompromise") == .keyCompromise)
        #expect(try RevocationReason(name: "key-compromise") == .keyCompromise)
        #expect(try RevocationReason(name: "SUPERSEDED") == .superseded)
        #expect(throws: KeygateError.self) { try RevocationReason(name: "because") }
    }
}
