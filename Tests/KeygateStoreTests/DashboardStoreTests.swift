import Foundation
import KeygateDomain
import KeygatePKI
import KeygateStore
import KeygateTestSupport
import Testing

/// What the dashboard reads from the store, on SQLite and on PostgreSQL alike.
@Suite struct DashboardStoreTests {
    func seedDevices(_ store: DatabaseStore, ids: [String], group: String = "fleet") async throws {
        if try await store.group(named: group) == nil {
            try await store.createGroup(
                Group(name: group, policy: .init(firstContact: "open")),
                audit: .init(actor: "test", action: "group.created", subject: group))
        }
        _ = try await store.importAllowlist(ids.map { AllowlistEntry(deviceID: $0, group: group) }, actor: "test")
    }

    @Test(arguments: TestDatabase.backends) func devicesAreFoundByPrefixAndPagedByID(backend: TestDatabase.Backend)
        async throws
    {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        try await seedDevices(store, ids: ["plant-1-a", "plant-1-b", "plant-10-a", "plant-2-a", "plant-1", "other"])
        try await seedDevices(store, ids: ["plant-1-z"], group: "spare")
        let all = try await store.devices(prefix: "plant-1", state: nil, group: nil, after: nil, limit: 10).map(\.id)
        #expect(all == ["plant-1", "plant-1-a", "plant-1-b", "plant-1-z", "plant-10-a"])
        let page = try await store.devices(prefix: "plant-1-", state: nil, group: nil, after: "plant-1-a", limit: 1)
        #expect(page.map(\.id) == ["plant-1-b"])
        let inGroup = try await store.devices(prefix: "plant-1-", state: .allowlisted, group: "spare", after: nil, limit: 10)
        #expect(inGroup.map(\.id) == ["plant-1-z"])
        #expect(try await store.devices(prefix: "plant-1-", state: .enrolled, group: nil, after: nil, limit: 10).isEmpty)
        #expect(try await store.devices(prefix: nil, state: nil, group: nil, after: nil, limit: 100).count == 7)
    }

    @Test(arguments: TestDatabase.backends) func auditPagesFilterByActorActionAndSubject(backend: TestDatabase.Backend)
        async throws
    {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        for index in 0..<30 {
            _ = try await store.appendAudit(
                .init(
                    actor: index % 3 == 0 ? "admin:alice" : "device:d\(index)",
                    action: index % 2 == 0 ? "device.quarantined" : "certificate.issued", subject: "d\(index % 5)"))
        }
        let byActor = try await store.auditEvents(matching: AuditFilter(actor: "admin:alice", limit: 4))
        #expect(byActor.map(\.actor) == Array(repeating: "admin:alice", count: 4))
        #expect(byActor.map(\.sequence) == byActor.map(\.sequence).sorted(by: >), "newest first")
        let rest = try await store.auditEvents(matching: AuditFilter(actor: "admin:alice", before: byActor.last?.sequence))
        #expect(byActor.count + rest.count == 10, "pages continue where the last ended, without overlap")
        #expect(Set(byActor.map(\.sequence)).isDisjoint(with: rest.map(\.sequence)))
        let both = try await store.auditEvents(matching: AuditFilter(actor: "admin:alice", action: "device.quarantined"))
        #expect(both.count == 5)
        let subject = try await store.auditEvents(matching: AuditFilter(subject: "d0", limit: 100))
        #expect(subject.count == 6 && subject.allSatisfy { $0.subject == "d0" })
        let unfiltered = try await store.auditEvents(matching: AuditFilter(before: 11, limit: 100))
        #expect(unfiltered.map(\.sequence) == Array((1...10).reversed()))
    }

    @Test(arguments: TestDatabase.backends) func activityIsCountedByBucketAndExpiryByHorizon(
        backend: TestDatabase.Backend
    ) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        let now = Date()
        for index in 0..<5 {
            let notAfter = now + TimeInterval([3, 5, 20, 40, 400][index]) * 86_400
            let serial = String(format: "0b%02x", index)
            try await store.insertCertificate(
                CertificateRecord(
                    serial: serial, subject: "CN=\(serial)", issuer: "CN=Test", notBefore: now - 60, notAfter: notAfter,
                    profile: "device", pem: "PEM"),
                audit: .init(
                    actor: "test", action: index < 3 ? "certificate.issued" : "certificate.renewed", subject: serial))
        }
        _ = try await store.revokeCertificate(
            serial: "0b01", reason: .keyCompromise, at: now, audit: .init(actor: "t", action: "certificate.revoked", subject: "0b01"))
        #expect(try await store.activeCertificatesExpiring(now: now, within: [7 * 86_400, 30 * 86_400]) == [1, 2])
        let soonest = try await store.certificates(issuer: "CN=Test", status: .active, after: nil, limit: 2)
        #expect(soonest.map(\.serial) == ["0b00", "0b02"], "soonest expiry first, the revoked one left out")
        let next = try await store.certificates(issuer: "CN=Test", status: .active, after: "0b02", limit: 10)
        #expect(next.map(\.serial) == ["0b03", "0b04"])
        #expect(try await store.certificates(issuer: "CN=Test", status: .revoked, after: nil, limit: 10).map(\.serial) == ["0b01"])
        let activity = try await store.activity(
            actions: ["certificate.issued", "certificate.renewed", "device.retired"], since: now - 3600, bucket: 300)
        #expect(activity["certificate.issued"]?.values.reduce(0, +) == 3)
        #expect(activity["certificate.renewed"]?.values.reduce(0, +) == 2)
        #expect(activity["device.retired"]?.isEmpty == true)
        let bucket = Int64(now.timeIntervalSince1970 / 300) * 300
        #expect(activity["certificate.issued"]?.keys.allSatisfy { abs($0 - bucket) <= 300 } == true)
        #expect(try await store.activity(actions: ["certificate.issued"], since: now + 60, bucket: 300)["certificate.issued"]?.isEmpty == true)
    }

    @Test(arguments: TestDatabase.backends) func outboxHealthSplitsPendingRetryingAndDeadLetters(
        backend: TestDatabase.Backend
    ) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        for index in 0..<4 {
            try await store.enqueue(OutboxItem(connector: "dps", deviceID: "d\(index)", action: .enroll), audit: nil)
        }
        try await store.enqueue(OutboxItem(connector: "central", deviceID: "c0", action: .disable), audit: nil)
        let items = try await store.outboxItems(state: .pending, deviceID: nil, limit: 10).filter { $0.connector == "dps" }
        let sorted = items.sorted { $0.id < $1.id }
        try await store.failOutboxItem(
            id: sorted[0].id, error: "HTTP 503 from DPS", nextAttemptAt: Date() + 60, deadLetter: false, audit: nil)
        try await store.failOutboxItem(
            id: sorted[1].id, error: "HTTP 400 from DPS: bad enrollment", nextAttemptAt: Date(), deadLetter: true,
            audit: nil)
        try await store.completeOutboxItem(id: sorted[2].id, at: Date())
        let health = try await store.outboxHealth()
        #expect(health["dps"]?.pending == 1)
        #expect(health["dps"]?.retrying == 1)
        #expect(health["dps"]?.deadLetters == 1)
        #expect(health["dps"]?.lastError?.hasPrefix("HTTP") == true)
        #expect(health["central"]?.pending == 1 && health["central"]?.lastError == nil)
    }

    @Test(arguments: TestDatabase.backends) func sessionsExpireAndEnd(backend: TestDatabase.Backend) async throws {
        let database = try TestDatabase(backend)
        let store = try await database.open()
        let now = Date()
        try await store.createDashboardSession(
            DashboardSession(idHash: "a", tokenHash: "t", csrf: "c", createdAt: now, expiresAt: now + 3600))
        try await store.createDashboardSession(
            DashboardSession(idHash: "b", tokenHash: "t", csrf: "c2", createdAt: now, expiresAt: now + 1))
        #expect(try await store.dashboardSession(idHash: "a", now: now)?.csrf == "c")
        #expect(try await store.dashboardSession(idHash: "b", now: now + 2) == nil, "expired")
        #expect(try await store.dashboardSession(idHash: "zz", now: now) == nil)
        try await store.deleteDashboardSession(idHash: "a")
        #expect(try await store.dashboardSession(idHash: "a", now: now) == nil, "signed out")
    }
}
