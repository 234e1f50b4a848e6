import Foundation
import KeygateDomain
import KeygatePKI
import KeygateStore
import KeygateTestSupport
import Testing

/// The store's behaviour, on SQLite and on PostgreSQL alike (PostgreSQL when `scripts/test.sh` started it).
@Suite struct StoreTests {
    func record(_ serial: String, notAfter: Date = Date() + 86_400, issuer: String = "CN=Test Issuing CA")
        -> CertificateRecord
    {
        CertificateRecord(
            serial: serial, subject: "CN=\(serial)", issuer: issuer, notBefore: Date() - 60, notAfter: notAfter,
            profile: "device", pem: "PEM-\(serial)")
    }

    func audit(_ serial: String) -> AuditEvent.Draft {
        .init(actor: "test", action: "certificate.issued", subject: serial, details: ["k": "v"])
    }

    @Test(arguments: TestDatabase.backends) func certificatesSurviveReopeningTheDatabase(
        backend: TestDatabase.Backend
    ) async throws {
        let database = try TestDatabase(backend)
        do {
            let store = try await database.open()
            try await store.insertCertificate(record("0a01"), audit: audit("0a01"))
            _ = try await store.revokeCertificate(
                serial: "0a01", reason: .keyCompromise, at: Date(), audit: audit("0a01"))
            await store.close()
        }
        let reopened = try await database.open()
        let found = try #require(try await reopened.certificate(serial: "0a01"))
        #expect(found.status == .revoked)
        #expect(found.revocationReason == .keyCompromise)
        #expect(found.pem == "PEM-0a01")
        #expect(try await reopened.verifyAuditChain() == nil)
    }

    /// Concurrent issuances are committed in groups; every record and audit event arrives, chained.
    @Test(arguments: TestDatabase.backends) func concurrentInsertsAreAllRecordedAndChained(backend: TestDatabase.Backend) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                group.addTask {
                    let serial = String(format: "%04x", i + 1)
                    try await store.insertCertificate(self.record(serial), audit: self.audit(serial))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await store.certificateCounts()[.active] == 300)
        #expect(try await store.auditEvents(subject: nil, since: nil, limit: 1000).count == 300)
        #expect(try await store.verifyAuditChain() == nil)
        // A duplicate serial fails alone; the batch it shared goes through.
        let code = await errorCode { try await store.insertCertificate(self.record("0001"), audit: self.audit("0001")) }
        #expect(code == "conflict", "a duplicate serial is refused")
        try await store.insertCertificate(record("ffff"), audit: audit("ffff"))
        #expect(try await store.certificateCounts()[.active] == 301)
    }

    @Test(arguments: TestDatabase.backends) func revokingTwiceConflictsAndHoldsCanBeRevoked(backend: TestDatabase.Backend) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        try await store.insertCertificate(record("0b01"), audit: audit("0b01"))
        let held = try await store.revokeCertificate(
            serial: "0b01", reason: .certificateHold, at: Date(), audit: audit("0b01"))
        #expect(held.status == .onHold)
        let code = await errorCode {
            _ = try await store.revokeCertificate(
                serial: "0b01", reason: .certificateHold, at: Date(), audit: self.audit("0b01"))
        }
        #expect(code == "alreadyRevoked")
        let revoked = try await store.revokeCertificate(
            serial: "0b01", reason: .keyCompromise, at: Date(), audit: audit("0b01"))
        #expect(revoked.status == .revoked)
        let again = await errorCode {
            _ = try await store.revokeCertificate(
                serial: "0b01", reason: .superseded, at: Date(), audit: self.audit("0b01"))
        }
        #expect(again == "alreadyRevoked")
        let missing = await errorCode {
            _ = try await store.revokeCertificate(
                serial: "ffff", reason: .superseded, at: Date(), audit: self.audit("ffff"))
        }
        #expect(missing == "certificateNotFound")
    }

    @Test(arguments: TestDatabase.backends) func listingFiltersAndPages(backend: TestDatabase.Backend) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        for i in 0..<25 {
            let serial = String(format: "%04x", i + 1)
            try await store.insertCertificate(
                record(serial, notAfter: Date() + Double(i < 5 ? 3600 : 86_400 * 30)), audit: audit(serial))
        }
        _ = try await store.revokeCertificate(serial: "0003", reason: .superseded, at: Date(), audit: audit("0003"))
        var seen: [String] = []
        var after: String?
        repeat {
            let page = try await store.certificates(matching: .init(after: after, limit: 10))
            seen += page.map(\.serial)
            after = page.count == 10 ? page.last?.serial : nil
        } while after != nil
        #expect(seen.count == 25)
        #expect(Set(seen).count == 25)
        #expect(try await store.certificates(matching: .init(status: .revoked)).map(\.serial) == ["0003"])
        #expect(try await store.certificates(matching: .init(expiringBefore: Date() + 7200)).count == 5)
        let counts = try await store.certificateCounts()
        #expect(counts[.active] == 24 && counts[.revoked] == 1)
    }

    @Test(arguments: TestDatabase.backends) func revokedEntriesDropCertificatesExpiredBeforeTheCutoff(backend: TestDatabase.Backend) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        try await store.insertCertificate(record("0c01", notAfter: Date() - 7200), audit: audit("0c01"))
        try await store.insertCertificate(record("0c02"), audit: audit("0c02"))
        for serial in ["0c01", "0c02"] {
            _ = try await store.revokeCertificate(
                serial: serial, reason: .keyCompromise, at: Date(), audit: audit(serial))
        }
        let all = try await store.revokedEntries(issuer: "CN=Test Issuing CA", notAfterSince: .distantPast)
        #expect(all.count == 2)
        let current = try await store.revokedEntries(issuer: "CN=Test Issuing CA", notAfterSince: Date() - 3600)
        #expect(current.map(\.serialNumber.hex) == ["0c02"])
        #expect(try await store.revocationRevision(issuer: "CN=Test Issuing CA") == 2)
    }

    @Test(arguments: TestDatabase.backends) func crlNumbersGrowAcrossConnections(backend: TestDatabase.Backend)
        async throws
    {
        let database = try TestDatabase(backend)
        let first = try await database.open()
        let second = try await database.open()
        var numbers: [Int64] = []
        for i in 0..<6 {
            numbers.append(try await (i % 2 == 0 ? first : second).nextCRLNumber(issuer: "CN=X"))
        }
        #expect(numbers == [1, 2, 3, 4, 5, 6])
    }

    @Test(.tags(.outsideTool), .fullRunOnly, arguments: TestDatabase.backends)
    func tamperingWithTheAuditLogIsDetectedAndNamed(backend: TestDatabase.Backend) async throws {
        guard ExternalTool.available(backend == .sqlite ? "sqlite3" : "psql") else { return }
        let database = try TestDatabase(backend)
        let store = try await database.open()
        for i in 1...5 {
            _ = try await store.appendAudit(
                .init(actor: "test", action: "thing.done", subject: "s\(i)", details: ["i": "\(i)"]))
        }
        #expect(try await store.verifyAuditChain() == nil)
        let tamper = "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"
        if backend == .sqlite {
            let edit = try await ExternalTool.require("sqlite3").run([database.text, tamper])
            #expect(edit.status == 0, "\(edit.combined)")
        } else {
            try TestDatabase.psql(database.text, tamper)
        }
        let broken = try #require(try await store.verifyAuditChain())
        #expect(broken.sequence == 3)
    }

    @Test(arguments: TestDatabase.backends) func auditDetailsKeepEveryCharacter(backend: TestDatabase.Backend) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        let details = [
            "quote": "say \"hi\"", "slash": "a/b\\c", "lines": "one\ntwo\r\tthree", "control": "\u{1}\u{1f}",
            "unicode": "Grüße 🚀", "": "empty key", "z": "",
        ]
        let appended = try await store.appendAudit(.init(actor: "t", action: "thing.done", subject: "s", details: details))
        let read = try await store.auditEvents(subject: "s", since: nil, limit: 1)
        #expect(read.first?.details == details)
        #expect(read.first?.hash == appended.hash)
        #expect(try await store.verifyAuditChain() == nil)
    }

    @Test(arguments: TestDatabase.backends) func adminTokensAreStoredHashed(backend: TestDatabase.Backend) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        let token = AdminTokenSecret.generate()
        #expect(token.hasPrefix("kg_") && token.count == 46)
        try await store.addAdminToken(
            AdminToken(name: "ops", hash: AdminTokenSecret.hash(token)),
            audit: .init(actor: "test", action: "adminToken.created", subject: "ops"))
        #expect(try await store.adminToken(hash: AdminTokenSecret.hash(token))?.name == "ops")
        #expect(try await store.adminToken(hash: AdminTokenSecret.hash(token + "x")) == nil)
        if backend == .sqlite {
            let raw = try Data(contentsOf: URL(fileURLWithPath: database.text))
            #expect(raw.range(of: Data(token.utf8)) == nil, "the token itself must not be stored")
        }
    }

    /// Two stores on one database stand for two nodes: each learns which status changes the other made.
    @Test(arguments: TestDatabase.backends) func statusChangesSayWhichNodeMadeThem(backend: TestDatabase.Backend)
        async throws
    {
        let database = try TestDatabase(backend)
        let (a, b) = (try await database.open(), try await database.open())
        for serial in ["0d01", "0d02", "0d03"] { try await a.insertCertificate(record(serial), audit: audit(serial)) }
        _ = try await a.revokeCertificate(serial: "0d01", reason: .keyCompromise, at: Date(), audit: audit("0d01"))
        _ = try await b.revokeCertificate(serial: "0d02", reason: .certificateHold, at: Date(), audit: audit("0d02"))
        let issuer = "CN=Test Issuing CA"
        #expect(try await a.revocationRevisions()[issuer] == 2)
        let seenByA = try await a.statusChanges(issuer: issuer, after: 0, limit: 10)
        #expect(seenByA.map(\.serial) == ["0d01", "0d02"] && seenByA.map(\.local) == [true, false], "\(seenByA)")
        let seenByB = try await b.statusChanges(issuer: issuer, after: 0, limit: 10)
        #expect(seenByB.map(\.local) == [false, true], "\(seenByB)")
        #expect(try await a.statusChanges(issuer: issuer, after: 2, limit: 10).isEmpty)
    }
}
