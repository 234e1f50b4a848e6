import Foundation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Testing

/// EST (RFC 7030 / RFC 8951) checked from outside: curl speaks HTTP and TLS client authentication,
/// openssl makes CSRs and reads the certs-only answers, Python's `cryptography` parses them too, and
/// pkilint lints the certificate.
@Suite(.tags(.outsideTool), .fullRunOnly) struct ESTTests {
    /// A factory CA and a bootstrap certificate it signed for `device` (CN), with openssl.
    static func factory(_ folder: TemporaryDirectory, devices: [String]) async throws -> String {
        let openssl = try ExternalTool.openssl
        let made = try await openssl.run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            folder.file("factory.key"), "-out", folder.file("factory.pem"), "-days", "30", "-subj", "/CN=Factory CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
        ])
        #expect(made.status == 0, "\(made.combined)")
        try folder.write(
            "leaf.ext", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
        for device in devices {
            let request = try await openssl.run([
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("\(device).boot.key"), "-out", folder.file("\(device).boot.csr"), "-subj", "/CN=\(device)",
            ])
            #expect(request.status == 0, "\(request.combined)")
            let signed = try await openssl.run([
                "x509", "-req", "-in", folder.file("\(device).boot.csr"), "-CA", folder.file("factory.pem"), "-CAkey",
                folder.file("factory.key"), "-CAcreateserial", "-days", "30", "-extfile", folder.file("leaf.ext"),
                "-out", folder.file("\(device).boot.pem"),
            ])
            #expect(signed.status == 0, "\(signed.combined)")
        }
        return try folder.read("factory.pem")
    }

    @Test func anESTClientEnrollsRenewsAndIsRefusedClearly() async throws {
        guard ExternalTool.available("curl"), ExternalTool.available("openssl") else { return }
        let folder = try TemporaryDirectory("est")
        // A real port in the CRL and OCSP URLs (pkilint checks their syntax).
        let kg = try await TestKeygate.make { $0.publicBaseURL = "http://127.0.0.1:8080" }
        let fleet = kg.server.services.fleet
        let factoryCA = try await Self.factory(folder, devices: ["dev-a", "dev-c", "stranger"])
        var group = GroupRequest(name: "est")
        group.attestationMethods = ["x509", "token"]
        group.bootstrapCAs = [factoryCA]
        _ = try await fleet.createGroup(group, actor: "admin:test")
        var gated = GroupRequest(name: "gated")
        gated.attestationMethods = ["x509"]
        gated.bootstrapCAs = [factoryCA]
        gated.approval = "manual"
        _ = try await fleet.createGroup(gated, actor: "admin:test")
        let staged = try await fleet.importAllowlist(
            .init(entries: [
                .init(deviceId: "dev-a", group: "est"), .init(deviceId: "dev-b", group: "est", generateToken: true),
                .init(deviceId: "dev-c", group: "gated"),
            ]), actor: "admin:test")
        let token = try #require(staged.tokens?["dev-b"])
        let running = try await kg.start()
        defer { Task { await running.stop() } }
        let est = ESTClient(baseURL: running.httpsURL, caFile: kg.rootPath, folder: folder)
        let boot = (certificate: folder.file("dev-a.boot.pem"), key: folder.file("dev-a.boot.key"))

        // cacerts: the issuing CA and the root, certs-only, read by openssl and by Python's cryptography.
        let cacerts = try await est.request("GET", "/.well-known/est/cacerts", name: "cacerts")
        #expect(cacerts.status == 200 && cacerts.headers["content-type"]?.hasPrefix("application/pkcs7-mime") == true)
        let chain = try await est.certificates(of: cacerts, name: "cacerts")
        #expect(chain.text.contains("CN = Keygate Issuing CA") && chain.text.contains("CN = Keygate Root CA"))
        if let python = ExternalTool.find("python3") {
            let parsed = try await python.run([
                "-c",
                "import sys; from cryptography.hazmat.primitives.serialization.pkcs7 import load_der_pkcs7_certificates as l; print(len(l(open(sys.argv[1],'rb').read())))",
                folder.file("cacerts.p7.der"),
            ])
            #expect(parsed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2", "\(parsed.combined)")
        }
        // csrattrs: what the group's policy asks for; without a label there is nothing to ask.
        let attributes = try await est.request("GET", "/.well-known/est/est/csrattrs", name: "csrattrs")
        #expect(attributes.status == 200 && attributes.headers["content-type"] == "application/csrattrs")
        let attributesDER = folder.file("csrattrs.der")
        try Data(base64Encoded: attributes.body.filter { !$0.isWhitespace })!.write(to: URL(fileURLWithPath: attributesDER))
        let parsedAttributes = try await ExternalTool.openssl.run(["asn1parse", "-inform", "DER", "-in", attributesDER])
        #expect(
            parsedAttributes.stdout.contains("prime256v1") && parsedAttributes.stdout.contains("ecdsa-with-SHA256"),
            "\(parsedAttributes.combined)")
        #expect(try await est.request("GET", "/.well-known/est/csrattrs", name: "noattrs").status == 204)

        // Nothing is recorded by a refused request.
        let certificatesBefore = try await kg.store.certificateCounts().values.reduce(0, +)
        let (_, goodCSR) = try await est.makeCSR("a1")
        let anonymous = try await est.request("POST", "/.well-known/est/simpleenroll", body: goodCSR, name: "anon")
        #expect(anonymous.status == 401 && anonymous.headers["www-authenticate"]?.hasPrefix("Basic") == true)
        try folder.write("garbage.b64", "this is not base64 at all!")
        try folder.write("notcsr.b64", Data("hello, not a CSR".utf8).base64EncodedString())
        let csrBytes = Data(base64Encoded: try folder.read("a1.csr.b64").filter { !$0.isWhitespace })!
        var tampered = [UInt8](csrBytes)
        tampered[tampered.count - 3] ^= 0x01  // inside the signature
        try folder.write("tampered.b64", Data(tampered).base64EncodedString())
        let (_, rsaCSR) = try await est.makeCSR("weak", keyType: ["-newkey", "rsa:1024"])
        for (file, expected, code) in [
            (folder.file("garbage.b64"), 400, "estMalformedRequest"), (folder.file("notcsr.b64"), 400, "malformedCSR"),
            (folder.file("tampered.b64"), 400, "csrSignatureInvalid"), (rsaCSR, 400, "keyTooWeak"),
        ] {
            let refused = try await est.request(
                "POST", "/.well-known/est/simpleenroll", body: file, certificate: boot.certificate, key: boot.key,
                name: "bad")
            #expect(refused.status == expected && refused.body.hasPrefix(code), "\(file): \(refused.status) \(refused.body)")
            #expect(refused.headers["content-type"]?.hasPrefix("text/plain") == true)
        }
        let wrongType = try await est.request(
            "POST", "/.well-known/est/simpleenroll", body: goodCSR, contentType: "application/json",
            certificate: boot.certificate, key: boot.key, name: "type")
        #expect(wrongType.status == 415)
        let stranger = try await est.request(
            "POST", "/.well-known/est/simpleenroll", body: goodCSR, certificate: folder.file("stranger.boot.pem"),
            key: folder.file("stranger.boot.key"), name: "stranger")
        #expect(stranger.status == 403 && stranger.body.contains("deviceNotAllowlisted"), "\(stranger.body)")
        let wrongToken = try await est.request(
            "POST", "/.well-known/est/simpleenroll", body: goodCSR, basic: "dev-b:kg_wrong-token-0000000000", name: "wt")
        #expect(wrongToken.status == 401, "\(wrongToken.body)")
        let keygen = try await est.request(
            "POST", "/.well-known/est/serverkeygen", body: goodCSR, certificate: boot.certificate, key: boot.key,
            name: "keygen")
        #expect(keygen.status == 501 && keygen.body.contains("estOperationNotSupported"))
        let mislabelled = try await est.request(
            "POST", "/.well-known/est/gated/simpleenroll", body: goodCSR, certificate: boot.certificate, key: boot.key,
            name: "label")
        #expect(mislabelled.status == 403 && mislabelled.body.contains("estLabelMismatch"))
        #expect(try await kg.store.certificateCounts().values.reduce(0, +) == certificatesBefore)
        #expect(try await kg.store.device(id: "dev-a")?.state == .allowlisted)

        // A bootstrap certificate enrolls: the certificate names the device (not what the CSR asked).
        let enrolled = try await est.request(
            "POST", "/.well-known/est/est/simpleenroll", body: goodCSR, certificate: boot.certificate, key: boot.key,
            name: "enroll-a")
        #expect(enrolled.status == 200, "\(enrolled.body)")
        #expect(enrolled.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only")
        let issued = try await est.certificates(of: enrolled, name: "dev-a")
        #expect(issued.text.contains("subject=CN = dev-a"), "\(issued.text)")
        let verified = try await ExternalTool.openssl.run([
            "verify", "-CAfile", kg.rootPath, "-untrusted", kg.issuingPath, issued.file,
        ])
        #expect(verified.status == 0, "\(verified.combined)")
        if ExternalTool.available("lint_pkix_cert") {
            let clean = folder.file("dev-a.clean.pem")
            _ = try await ExternalTool.openssl.run(["x509", "-in", issued.file, "-out", clean])
            let lint = try await ExternalTool.require("lint_pkix_cert").run(["lint", "-s", "WARNING", clean])
            #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint.combined)")
        }
        let deviceA = try await kg.store.device(id: "dev-a")
        #expect(deviceA?.state == .enrolled && deviceA?.attestationMethod == "est-x509")

        // HTTP Basic with the one-time enrollment token: once.
        let (_, tokenCSR) = try await est.makeCSR("b1")
        let byToken = try await est.request(
            "POST", "/.well-known/est/simpleenroll", body: tokenCSR, basic: "dev-b:\(token)", name: "enroll-b")
        #expect(byToken.status == 200, "\(byToken.body)")
        #expect(try await est.certificates(of: byToken, name: "dev-b").text.contains("subject=CN = dev-b"))
        let again = try await est.request(
            "POST", "/.well-known/est/simpleenroll", body: tokenCSR, basic: "dev-b:\(token)", name: "again-b")
        #expect(again.status == 401, "\(again.body)")

        // simplereenroll with the Keygate certificate: a new key gives a new certificate; the same key is refused.
        let (newKey, renewalCSR) = try await est.makeCSR("a2")
        let renewed = try await est.request(
            "POST", "/.well-known/est/simplereenroll", body: renewalCSR, certificate: issued.file,
            key: folder.file("a1.key.pem"), name: "renew-a")
        #expect(renewed.status == 200, "\(renewed.body)")
        let second = try await est.certificates(of: renewed, name: "dev-a-2")
        #expect(second.text.contains("subject=CN = dev-a") && second.text != issued.text)
        let sameKeyCSR = try await est.makeCSR("a3", existingKey: newKey)
        let reused = try await est.request(
            "POST", "/.well-known/est/simplereenroll", body: sameKeyCSR, certificate: second.file, key: newKey,
            name: "reuse-a")
        #expect(reused.status == 400 && reused.body.contains("keyReuse"), "\(reused.status) \(reused.body)")
        let bootstrapRenewal = try await est.request(
            "POST", "/.well-known/est/simplereenroll", body: renewalCSR, certificate: boot.certificate, key: boot.key,
            name: "renew-boot")
        #expect(bootstrapRenewal.status == 403 && bootstrapRenewal.body.contains("estReenrollNeedsKeygateCertificate"))
        let history = try await kg.store.auditEvents(subject: "dev-a", since: nil, limit: 20).map(\.action)
        #expect(history.contains("device.enrolled") && history.contains("certificate.renewed"), "\(history)")
        // Quarantined like any device: its EST renewal is refused (and its certificate is on hold).
        _ = try await kg.server.services.lifecycle.quarantine(deviceID: "dev-a", reason: "stolen", actor: "admin:test")
        let (_, afterQuarantine) = try await est.makeCSR("a4")
        let refusedRenewal = try await est.request(
            "POST", "/.well-known/est/simplereenroll", body: afterQuarantine, certificate: second.file, key: newKey,
            name: "renew-quarantined")
        #expect(refusedRenewal.status == 403 || refusedRenewal.status == 401, "\(refusedRenewal.status) \(refusedRenewal.body)")
        #expect(try await kg.store.device(id: "dev-a")?.state == .quarantined)

        // Manual approval: 202 with Retry-After until an operator approves.
        let (_, gatedCSR) = try await est.makeCSR("c1")
        let bootC = (folder.file("dev-c.boot.pem"), folder.file("dev-c.boot.key"))
        let waiting = try await est.request(
            "POST", "/.well-known/est/gated/simpleenroll", body: gatedCSR, certificate: bootC.0, key: bootC.1,
            name: "wait-c")
        #expect(waiting.status == 202 && waiting.headers["retry-after"] != nil, "\(waiting.status) \(waiting.body)")
        _ = try await kg.server.services.lifecycle.approve(deviceID: "dev-c", actor: "admin:test")
        let approved = try await est.request(
            "POST", "/.well-known/est/gated/simpleenroll", body: gatedCSR, certificate: bootC.0, key: bootC.1,
            name: "approved-c")
        #expect(approved.status == 200, "\(approved.body)")
    }
}
