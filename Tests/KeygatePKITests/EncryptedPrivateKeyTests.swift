import Foundation
import KeygateTestSupport
import Testing
import X509

@testable import KeygatePKI

@Suite struct EncryptedPrivateKeyTests {
    @Test(arguments: KeyAlgorithm.allCases)
    func roundTrip(_ algorithm: KeyAlgorithm) throws {
        let signer = try SoftwareSigner.generate(algorithm)
        let pkcs8 = try signer.privateKey.pkcs8DER()
        let pem = try EncryptedPrivateKey.encrypt(pkcs8: pkcs8, passphrase: "correct horse", iterations: 1000)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        let decrypted = try EncryptedPrivateKey.decrypt(pem: pem, passphrase: "correct horse")
        #expect(decrypted == pkcs8)
        let reloaded = try SoftwareSigner(privateKey: Certificate.PrivateKey(derBytes: decrypted))
        #expect(reloaded.publicKey == signer.publicKey)
    }

    @Test func wrongPassphraseIsRefused() throws {
        let signer = try SoftwareSigner.generate(.p256)
        let pem = try EncryptedPrivateKey.encrypt(
            pkcs8: try signer.privateKey.pkcs8DER(), passphrase: "right one", iterations: 1000)
        #expect(throws: KeygateError.self) { try EncryptedPrivateKey.decrypt(pem: pem, passphrase: "wrong one") }
    }
}

@Suite struct EncryptedPrivateKeyInteropTests {
    @Test(.tags(.outsideTool), .fullRunOnly, arguments: KeyAlgorithm.allCases)
    func opensslReadsOurKeys(_ algorithm: KeyAlgorithm) throws {
        guard ExternalTool.available("openssl") else { return }
        let dir = try TemporaryDirectory("pkcs8")
        let signer = try SoftwareSigner.generate(algorithm)
        let pem = try EncryptedPrivateKey.encrypt(pkcs8: try signer.privateKey.pkcs8DER(), passphrase: "s3cret-pass")
        let path = try dir.write("key.pem", pem)
        let openssl = try ExternalTool.openssl
        let read = try openssl.run(["pkey", "-in", path, "-passin", "pass:s3cret-pass", "-pubout"])
        #expect(read.status == 0, "\(read.combined)")
        #expect(read.stdout.contains("BEGIN PUBLIC KEY"))
        let wrong = try openssl.run(["pkey", "-in", path, "-passin", "pass:wrong-pass", "-noout"])
        #expect(wrong.status != 0)
        let info = try openssl.run(["asn1parse", "-in", path])
        #expect(info.stdout.contains("PBES2") && info.stdout.contains("PBKDF2") && info.stdout.contains("aes-256-cbc"))
        #expect(info.stdout.contains("hmacWithSHA256"))
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func weReadOpenSSLEncryptedKeys() throws {
        guard ExternalTool.available("openssl") else { return }
        let dir = try TemporaryDirectory("pkcs8")
        let openssl = try ExternalTool.openssl
        try openssl.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", dir.file("ec.pem")])
        for cipher in ["aes256", "aes128"] {
            let out = try openssl.run([
                "pkcs8", "-topk8", "-in", dir.file("ec.pem"), "-v2", cipher, "-passout", "pass:from-openssl", "-out",
                dir.file("enc-\(cipher).pem"),
            ])
            #expect(out.status == 0)
            let der = try EncryptedPrivateKey.decrypt(
                pem: try dir.read("enc-\(cipher).pem"), passphrase: "from-openssl")
            let signer = try SoftwareSigner(privateKey: try Certificate.PrivateKey(derBytes: der))
            #expect(signer.algorithm == .p256)
        }
    }
}

/// The DER time fields agree with Foundation's Gregorian calendar in UTC.
@Test func derTimeComponentsMatchTheGregorianCalendar() {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    var rng = SystemRandomNumberGenerator()
    let samples =
        [-86_401.0, -1, 0, 951_782_399, 951_782_400, 951_868_800, 4_107_542_399, 4_107_542_400, 2_524_607_999]
        + (0..<2000).map { _ in Double(Int64.random(in: -2_000_000_000...8_000_000_000, using: &rng)) + 0.75 }
    for seconds in samples {
        let date = Date(timeIntervalSince1970: seconds)
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let mine = DERTime.components(date)
        #expect(
            mine.year == c.year && mine.month == c.month && mine.day == c.day && mine.hour == c.hour
                && mine.minute == c.minute && mine.second == c.second, "\(date): \(mine) vs \(c)")
    }
}

/// Serial numbers parse from hex in any case, with or without colons, and refuse anything else.
@Test func serialNumbersParseFromHex() {
    for _ in 0..<500 {
        let serial = Certificate.SerialNumber()
        #expect(Certificate.SerialNumber(hex: serial.hex) == serial)
        #expect(Certificate.SerialNumber(hex: serial.hex.uppercased()) == serial)
    }
    #expect(Certificate.SerialNumber(hex: "0A:01")?.bytes == [0x0a, 0x01])
    #expect(Certificate.SerialNumber(hex: "000a01")?.bytes == [0x0a, 0x01], "leading zero octets go")
    #expect(Certificate.SerialNumber(hex: "0080")?.bytes == [0x80], "kept as a magnitude; DER adds the sign octet")
    for bad in ["", "abc", "zz", "0x01", String(repeating: "ab", count: 22)] {
        #expect(Certificate.SerialNumber(hex: bad) == nil, "\(bad)")
    }
}
