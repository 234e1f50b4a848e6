import AsyncHTTPClient
import Foundation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// The CA's background work: the expiry scanner, the CRL schedule and pre-signed OCSP answers.
@Suite struct ExpiryAndRevocationTests {
    /// A device certificate issued directly, as enrollment or renewal would record it.
    static func issue(_ service: CertificateService, device: String, validity: TimeInterval) async throws -> String {
        try await service.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: device),
            validity: validity, deviceID: device, actor: "device:\(device)"
        ).record.serial
    }

    @Test func theExpiryScannerMarksAndCountsCertificatesCloseToExpiryThatWereNotRenewed() async throws {
        let kg = try await TestKeygate.make()
        let server = try await kg.start()
        defer { Task { await server.stop() } }
        let service = kg.server.services.certificates
        let old1 = try await Self.issue(service, device: "lamp-1", validity: 600)
        let old2 = try await Self.issue(service, device: "lamp-2", validity: 600)
        let scanner = ExpiryScanner(service: service, window: 7 * 86_400, logger: .init(label: "test"))
        let pass = try await scanner.scan()
        #expect(Set(pass.newlyFlagged.map(\.serial)) == [old1, old2] && pass.flagged == 2)
        #expect(try await scanner.scan().newlyFlagged.isEmpty, "each certificate is marked once")
        #expect(service.metrics.render().contains("keygate_certificates_expiring 2"))

        // lamp-1 renews: its old certificate no longer counts, its new one does (it is short-lived too).
        try await Task.sleep(for: .milliseconds(1100))  // a later creation time orders the renewal after
        let new1 = try await Self.issue(service, device: "lamp-1", validity: 600)
        let after = try await scanner.scan()
        #expect(after.newlyFlagged.map(\.serial) == [new1] && after.flagged == 2)
        let events = try await kg.store.auditEvents(subject: old2, since: nil, limit: 10)
        #expect(events.contains { $0.action == "certificate.expiring" && $0.details["deviceId"] == "lamp-2" })

        // The admin API lists what the scanner counts (what `keygate cert list --expiring 7d` shows).
        let http = HTTPClient.trusting(kg.rootPath)
        defer { Task { try? await http.shutdown() } }
        var request = HTTPClientRequest(url: server.httpsURL + "/admin/v1/certificates?expiringWithin=7d")
        request.headers.add(name: "Authorization", value: "Bearer \(kg.adminToken)")
        let response = try await http.execute(request, timeout: .seconds(10))
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let list = try decoder.decode(
            CertificateListBody.self, from: Data((try await response.body.collect(upTo: 1 << 20)).readableBytesView))
        #expect(Set(list.certificates.map(\.serial)) == [new1, old2])
    }

    @Test(.tags(.outsideTool), .fullRunOnly)
    func crlEntriesOfExpiredCertificatesAreDroppedAfterTheCRLThatFollowsTheirExpiry() async throws {
        guard ExternalTool.available("openssl") else { return }
        let kg = try await TestKeygate.make()
        let service = kg.server.services.certificates
        func record(_ serial: String, notAfter: Date) async throws {
            try await kg.store.insertCertificate(
                CertificateRecord(
                    serial: serial, subject: "CN=x", issuer: service.issuerName, notBefore: Date() - 60,
                    notAfter: notAfter, profile: "device", pem: "", deviceID: nil),
                audit: .init(actor: "test", action: "certificate.issued", subject: serial))
        }
        // CRLs built at chosen times (thisUpdate), so the test does not depend on how busy the machine is.
        let t0 = Date()
        // `later` has its first bit set: DER needs a leading zero octet to keep it positive.
        let expiring = "0a01", lasting = "0a02", later = "8f03"
        try await record(expiring, notAfter: t0 + 100)
        try await record(lasting, notAfter: t0 + 86_400)
        try await record(later, notAfter: t0 + 86_400)
        _ = try await service.revoke(serial: expiring, reason: .keyCompromise, actor: "test")
        _ = try await service.revoke(serial: lasting, reason: .certificateHold, actor: "test")
        let crl1 = try await service.crl.current(now: t0 + 10)
        // The first CRL after the expiry still lists it...
        _ = try await service.revoke(serial: later, reason: .superseded, actor: "test")
        let crl2 = try await service.crl.current(now: t0 + 200)
        // ...the one after that no longer does.
        _ = try await service.revoke(serial: lasting, reason: .keyCompromise, actor: "test")
        let crl3 = try await service.crl.current(now: t0 + 300)
        #expect(crl1.entryCount == 2 && crl2.entryCount == 3 && crl3.entryCount == 2)
        #expect(crl1.number < crl2.number && crl2.number < crl3.number)
        for (label, crl) in [("first", crl1), ("second", crl2), ("third", crl3)] {
            let der = try kg.folder.write("\(label).der", Data(crl.der))
            let pem = kg.folder.file("\(label).pem")
            try await ExternalTool.openssl.run(["crl", "-inform", "DER", "-in", der, "-out", pem])
            let text = try await ExternalTool.openssl.run([
                "crl", "-in", pem, "-noout", "-text", "-CAfile", kg.chainPath,
            ])
            #expect(text.combined.contains("verify OK"))
            #expect(text.stdout.contains("0A01") == (label != "third"), "\(label): \(text.stdout)")
            if label != "first" { #expect(text.stdout.contains("Serial Number: 8F03"), "\(text.stdout)") }
            if label == "second" { #expect(text.stdout.contains("Certificate Hold")) }
            if label == "third" {
                #expect(!text.stdout.contains("Certificate Hold") && text.stdout.contains("Key Compromise"))
            }
            guard ExternalTool.available("lint_crl") else { continue }
            let lint = try await ExternalTool.require("lint_crl").run([
                "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", pem,
            ])
            #expect(
                lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                "pkilint on the \(label) CRL: \(lint.combined)")
        }
    }

    /// The running server publishes a CRL soon after a revocation without anyone fetching it, and
    /// signs the revoked certificate's OCSP answer ahead of any request.
    @Test func theServerPublishesTheCRLSoonAfterARevocationWithoutAFetch() async throws {
        let kg = try await TestKeygate.make()
        let server = try await kg.start()
        defer { Task { await server.stop() } }
        let service = kg.server.services.certificates
        let serial = try await Self.issue(service, device: "lamp-9", validity: 86_400)
        let before = service.keptOCSPAnswers
        _ = try await service.revoke(serial: serial, reason: .keyCompromise, actor: "test")
        #expect(service.keptOCSPAnswers > before, "the revoked certificate's answer is signed at once")
        let revision = try await kg.store.revocationRevision(issuer: service.issuerName)
        let deadline = ContinuousClock.now + .seconds(15)
        var published: PublishedCRL?
        while ContinuousClock.now < deadline {
            published = try await kg.store.latestCRL(issuer: service.issuerName)
            if let published, published.revision >= revision { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect((published?.revision ?? 0) >= revision, "the schedule published a CRL with the revocation")
        #expect(published.map { $0.nextUpdate > Date() } ?? false)
    }
}
