import Foundation
import KeygatePKI
import KeygateTestSupport
import Testing

@Suite struct CSRPolicyTests {
    /// CSRs made by openssl with keys Keygate must refuse, and the code it must answer with.
    @Test(.tags(.outsideTool), .fullRunOnly, arguments: [
        ("rsa:1024", "keyTooWeak"),
        ("secp256k1", "unsupportedKey"),
        ("brainpoolP256r1", "unsupportedKey"),
    ])
    func weakOrExoticKeysAreRefused(_ key: String, _ expected: String) async throws {
        guard ExternalTool.available("openssl") else { return }
        let dir = try TemporaryDirectory("csr")
        let openssl = try ExternalTool.openssl
        if key.hasPrefix("rsa:") {
            try await openssl.run([
                "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", dir.file("k.pem"),
            ])
        } else {
            try await openssl.run(["ecparam", "-name", key, "-genkey", "-noout", "-out", dir.file("k.pem")])
        }
        let made = try await openssl.run([
            "req", "-new", "-key", dir.file("k.pem"), "-subj", "/CN=x", "-out", dir.file("r.csr"),
        ])
        #expect(made.status == 0, "\(made.combined)")
        let pem = try dir.read("r.csr")
        let code = await errorCode { _ = try CSRPolicy().check(Array(pem.utf8)) }
        #expect(code == expected)
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func opensslCSRsOfEveryAllowedKindPass() throws {
        guard ExternalTool.available("openssl") else { return }
        let dir = try TemporaryDirectory("csr")
        let openssl = try ExternalTool.openssl
        let kinds: [([String], KeyAlgorithm)] = [
            (["ecparam", "-name", "prime256v1", "-genkey", "-noout"], .p256),
            (["ecparam", "-name", "secp384r1", "-genkey", "-noout"], .p384),
            (["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"], .rsa3072),
            (["genpkey", "-algorithm", "ED25519"], .ed25519),
        ]
        for (command, algorithm) in kinds {
            try openssl.run(command + ["-out", dir.file("k.pem")])
            try openssl.run(["req", "-new", "-key", dir.file("k.pem"), "-subj", "/CN=x", "-out", dir.file("r.csr")])
            let checked = try CSRPolicy().check(Array(try dir.read("r.csr").utf8))
            #expect(checked.keyAlgorithm == algorithm)
        }
    }

    @Test func malformedInputGetsAStableCode() throws {
        let good = try TestCSR.make()
        var badSignature = good.der
        badSignature[badSignature.count - 5] ^= 0x55
        let cases: [(String, [UInt8], String)] = [
            ("random bytes", (0..<300).map { _ in UInt8.random(in: 0...255) }, "malformedCSR"),
            ("truncated DER", Array(good.der.prefix(good.der.count / 2)), "malformedCSR"),
            (
                "wrong PEM label",
                Array(good.pem.replacingOccurrences(of: "CERTIFICATE REQUEST", with: "CERTIFICATE").utf8),
                "malformedPEM"
            ),
            (
                "broken PEM",
                Array("-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n".utf8),
                "malformedPEM"
            ),
            ("bad signature", badSignature, "csrSignatureInvalid"),
            ("too large", [UInt8](repeating: 0x30, count: 20_000), "csrTooLarge"),
            ("empty", [], "malformedCSR"),
        ]
        for (name, bytes, expected) in cases {
            var code = "none"
            do {
                _ = try CSRPolicy().check(bytes)
            } catch let error as KeygateError {
                code = error.code.rawValue
            }
            #expect(code == expected, "\(name)")
        }
    }

    /// Thousands of mutated CSRs: every one is either accepted or refused with a KeygateError.
    @Test func mutatedCSRsNeverCrashTheParser() throws {
        var generator = SystemRandomNumberGenerator()
        let seeds = try [KeyAlgorithm.p256, .p384, .ed25519].map { try TestCSR.make($0).der }
        var refused = 0
        var accepted = 0
        for round in 0..<3000 {
            var bytes = seeds[round % seeds.count]
            switch round % 4 {
            case 0:  // flip bytes
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    let i = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[i] = UInt8.random(in: 0...255, using: &generator)
                }
            case 1:  // truncate
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
            case 2:  // insert garbage
                let i = Int.random(in: 0...bytes.count, using: &generator)
                bytes.insert(
                    contentsOf: (0..<Int.random(in: 1...16, using: &generator)).map { _ in UInt8.random(in: 0...255) },
                    at: i)
            default:  // corrupt a length byte near the start
                let i = Int.random(in: 0..<min(12, bytes.count), using: &generator)
                bytes[i] = [0x00, 0x7F, 0x80, 0x81, 0x84, 0xFF].randomElement(using: &generator)!
            }
            do {
                _ = try CSRPolicy().check(bytes)
                accepted += 1
            } catch is KeygateError {
                refused += 1
            }
        }
        #expect(refused + accepted == 3000)
        #expect(refused > 2500)
    }
}
