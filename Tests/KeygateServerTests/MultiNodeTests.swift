import AsyncHTTPClient
import Foundation
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateSandbox
import KeygateTestSupport
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// Three Keygate nodes on one PostgreSQL database, each with its own data folder (made by
/// `node join`), store connections and caches, as three processes would be.
@Suite(.needsPostgres, .serialized) struct MultiNodeTests {
    let attributes = DDKAttributes(strings: ["machine-id": "cluster-1", "mac:eth0": "02:00:00:00:00:09"])

    /// Node A (made by `init` on a fresh database), B and C (joined from A).
    func cluster(
        policy: Group.Policy = .init(firstContact: "open"), devices: [String] = ["dev-1", "dev-2"],
        tokens: [String: String] = [:]
    ) async throws -> [TestKeygate] {
        let database = try TestDatabase(.postgres, label: "cluster")
        let a = try await TestKeygate.make(database: database)
        try await a.store.createGroup(
            Group(name: "fleet", policy: policy), audit: .init(actor: "test", action: "group.created", subject: "fleet"))
        _ = try await a.store.importAllowlist(
            devices.map {
                AllowlistEntry(deviceID: $0, group: "fleet", tokenHash: tokens[$0].map(AdminTokenSecret.hash))
            }, actor: "test")
        let b = try await a.join()
        let c = try await a.join()
        #expect(b.directory.url != a.directory.url && c.directory.url != b.directory.url)
        return [a, b, c]
    }

    func code(_ body: () async throws -> Void) async -> String { await errorCode(body) }

    @Test func theAuditChainIsOneChainWhateverNodeWrites() async throws {
        let nodes = try await cluster()
        // `init` issued the TLS listener's certificate.
        let before = try await nodes[0].store.certificateCounts()[.active] ?? 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, node) in nodes.enumerated() {
                for n in 0..<40 {
                    group.addTask {
                        _ = try await node.server.services.certificates.issue(
                            csr: Array(try TestCSR.make().pem.utf8), profile: .device,
                            identity: .init(commonName: "node\(index)-\(n)"), actor: "test")
                        _ = try await node.store.appendAudit(
                            .init(actor: "test", action: "thing.done", subject: "node\(index)", details: ["n": "\(n)"]))
                    }
                }
            }
            try await group.waitForAll()
        }
        for node in nodes {
            #expect(try await node.store.verifyAuditChain() == nil)
            #expect(try await node.store.certificateCounts()[.active] == before + 120)
        }
        let events = try await nodes[0].store.auditEvents(after: 0, limit: 10_000)
        #expect(events.map(\.sequence) == Array(1...Int64(events.count)), "no gap, no duplicate")
        #expect(events.filter { $0.action == "certificate.issued" }.count == before + 120)
    }

    @Test func crlNumbersGrowAcrossNodesAndEveryNodeServesTheNewest() async throws {
        let nodes = try await cluster()
        var numbers: [Int64] = []
        for _ in 0..<3 {
            let round = try await withThrowingTaskGroup(of: Int64.self) { group in
                for node in nodes { group.addTask { try await node.server.services.certificates.crl.rebuildNow().number } }
                return try await group.reduce(into: [Int64]()) { $0.append($1) }
            }
            #expect(Set(round).count == 3)
            if let last = numbers.max() { #expect(round.min()! > last, "a later round gets higher numbers") }
            numbers += round
        }
        let newest = numbers.max()!
        for node in nodes {
            await node.server.services.certificates.crl.adoptNewer()
            #expect(try await node.server.services.certificates.crl.current().number == newest)
        }
    }

    @Test(.tags(.outsideTool)) func aRevocationThroughOneNodeChangesTheOCSPAnswersOfTheOthers() async throws {
        guard ExternalTool.available("openssl") else { return }
        let nodes = try await cluster()
        var started: [RunningServer] = []
        for node in nodes { started.append(try await node.start()) }
        let running = started
        defer { Task { for server in running { await server.stop() } } }
        let a = nodes[0]
        let issued = try await a.server.services.certificates.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "ocsp-1"),
            actor: "test")
        let leaf = try a.folder.write("leaf.pem", issued.record.pem)
        let openssl = try ExternalTool.openssl
        // No nonce: the answers come from what each node signed ahead and keeps.
        try await openssl.run([
            "ocsp", "-issuer", a.issuingPath, "-cert", leaf, "-no_nonce", "-reqout", a.folder.file("req.der"),
        ])
        let request = Array(try Data(contentsOf: URL(fileURLWithPath: a.folder.file("req.der"))))

        func status(_ node: TestKeygate, _ label: String) async throws -> String {
            let answer = await node.server.services.certificates.answerOCSP(request)
            let path = try a.folder.write("\(label).der", Data(answer))
            let text = try await openssl.run([
                "ocsp", "-issuer", a.issuingPath, "-reqin", a.folder.file("req.der"), "-respin", path, "-CAfile",
                a.chainPath, "-resp_text",
            ])
            #expect(text.combined.contains("Response verify OK"), "\(text.combined)")
            return text.stdout.contains("Cert Status: revoked") ? "revoked" : "good"
        }
        // B and C sign and keep "good" answers.
        #expect(try await status(nodes[1], "b-good") == "good")
        #expect(try await status(nodes[2], "c-good") == "good")
        _ = try await a.server.services.certificates.revoke(
            serial: issued.record.serial, reason: .keyCompromise, actor: "test")
        let revokedAt = Date()
        for (index, node) in nodes.enumerated().dropFirst() {
            var answer = "good"
            while answer == "good", Date().timeIntervalSince(revokedAt) < 5 {
                answer = try await status(node, "node\(index)-after")
                if answer == "good" { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(answer == "revoked")
            #expect(Date().timeIntervalSince(revokedAt) < 2, "node \(index) followed within 2 s")
        }
    }

    @Test func groupAndTokenChangesTakeEffectOnEveryNode() async throws {
        let nodes = try await cluster()
        let (a, b, c) = (nodes[0], nodes[1], nodes[2])
        let identity = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        // A group's policy changed through A: B and C apply it at the next request.
        var request = GroupRequest()
        request.attestationMethods = ["token"]
        _ = try await a.server.services.fleet.updateGroup(named: "fleet", request, actor: "test")
        let changedAt = Date()
        for node in [b, c] {
            let challenge = try await node.server.services.enrollment.challenge(deviceID: "dev-1")
            #expect(
                await code { _ = try await node.server.services.enrollment.register(try identity.register(challenge)) }
                    == "attestationMethodNotAllowed")
        }
        #expect(Date().timeIntervalSince(changedAt) < 2)

        // An admin token made through A works on B at once; revoked through A, C refuses it.
        let (_, token) = try await a.server.services.tokens.create(
            name: "ops", role: .admin, lifetime: nil, actor: "test")
        let runningB = try await b.start()
        let runningC = try await c.start()
        defer { Task { await runningB.stop(); await runningC.stop() } }
        let client = HTTPClient.trusting(a.rootPath)
        defer { Task { try? await client.shutdown() } }
        func get(_ server: RunningServer, _ token: String) async throws -> HTTPResponseStatus {
            var request = HTTPClientRequest(url: server.httpsURL + "/admin/v1/groups")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            return try await client.execute(request, timeout: .seconds(10)).status
        }
        #expect(try await get(runningB, token) == .ok)
        try await a.server.services.tokens.revoke(name: "ops", actor: "test")
        #expect(try await get(runningC, token) == .unauthorized)
        #expect(try await get(runningB, token) == .unauthorized)
    }

    @Test func aConnectorChangedThroughOneNodeIsUsedByTheOthersDeliveries() async throws {
        let nodes = try await cluster()
        let folder = try TemporaryDirectory("cluster-connector")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        try await OutboxDispatcherTests.addDPSConnector(nodes[0], sandbox)
        let pem = try await nodes[0].server.services.certificates.issue(
            csr: Array(try TestCSR.make().pem.utf8), profile: .device, identity: .init(commonName: "moved-1"),
            actor: "test"
        ).record.pem
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let dispatcher = OutboxDispatcher(store: nodes[1].store, secrets: nodes[1].secrets, logger: logger, node: "b")
        try await nodes[0].store.enqueue(
            OutboxItem(connector: "dps", deviceID: "moved-1", action: .enroll, certificate: pem), audit: nil)
        #expect(try await dispatcher.deliverDue() == 1)
        #expect(try await nodes[2].store.enrollmentConfirmed(deviceID: "moved-1") == true)

        // Through node A, the connector's credentials are changed to a DPS that does not answer (port 1):
        // node B's next delivery opens the changed connector and fails.
        let sealed = try #require(try await nodes[0].store.connector(named: "dps")).sealedSecrets
        let nowhere = sandbox.connection.dps.serviceConnectionString.replacingOccurrences(
            of: #":[0-9]+;"#, with: ":1;", options: .regularExpression)
        #expect(nowhere != sandbox.connection.dps.serviceConnectionString)
        try await nodes[0].store.updateConnectorSecrets(
            name: "dps", sealedSecrets: ["connectionString": try nodes[0].secrets.seal(nowhere)],
            audit: .init(actor: "test", action: "connector.updated", subject: "dps"))
        try await nodes[0].store.enqueue(
            OutboxItem(connector: "dps", deviceID: "moved-2", action: .enroll, certificate: pem), audit: nil)
        #expect(try await dispatcher.deliverDue() == 1)
        let failed = try #require(try await nodes[1].store.outboxItems(state: nil, deviceID: "moved-2", limit: 1).first)
        #expect(failed.state == .pending && failed.attempts == 1, "\(failed)")
        #expect(failed.lastError?.contains("azureUnavailable") == true, "\(failed)")
        // Changed back through node C: B delivers again.
        try await nodes[2].store.updateConnectorSecrets(
            name: "dps", sealedSecrets: sealed, audit: .init(actor: "test", action: "connector.updated", subject: "dps"))
        #expect(try await dispatcher.deliverDue(now: Date() + 3600) == 1)
        #expect(try await nodes[0].store.enrollmentConfirmed(deviceID: "moved-2") == true)
    }

    @Test func aDDKSessionSpansNodesAndAReplayOrARacingCloneIsRefusedOnEvery() async throws {
        let nodes = try await cluster()
        let device = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        // Challenge from A, registration at B, the same registration replayed at C.
        let first = try await nodes[0].server.services.enrollment.challenge(deviceID: "dev-1")
        let registration = try device.register(first)
        _ = try await nodes[1].server.services.enrollment.register(registration)
        #expect(await code { _ = try await nodes[2].server.services.enrollment.register(registration) } == "challengeInvalid")
        // A clone holding the same secrets races the device: both ask for challenges at the same epoch
        // (through A and B) and answer at once (through B and C). One session wins; the other is refused.
        for _ in 0..<5 {
            let mine = try await nodes[0].server.services.enrollment.challenge(deviceID: "dev-1")
            let theirs = try await nodes[1].server.services.enrollment.challenge(deviceID: "dev-1")
            #expect(mine.epoch == theirs.epoch)
            let results = await withTaskGroup(of: String.self) { group in
                for (challenge, node) in [(mine, nodes[1]), (theirs, nodes[2])] {
                    group.addTask {
                        await errorCode {
                            let attestation = try device.authenticate(challenge, payload: DeviceAPI.statusPayload)
                            _ = try await node.server.services.enrollment.status(
                                .init(deviceId: "dev-1", challengeId: challenge.challengeId, attestation: attestation))
                        }
                    }
                }
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(results.filter { $0 == "none" }.count == 1, "\(results)")
            #expect(results.contains("challengeInvalid"), "\(results)")
        }
        let stored = try #require(try await nodes[2].store.device(id: "dev-1"))
        #expect(stored.ddkEpoch == 6, "one step per session, none lost, none doubled")
    }

    @Test func aOneTimeEnrollmentTokenIsOneTimeAcrossNodes() async throws {
        let token = "kg_enroll_" + UUID().uuidString
        let nodes = try await cluster(policy: .init(firstContact: "token"), tokens: ["dev-1": token])
        let device = DDKIdentity(deviceID: "dev-1", attributes: attributes)
        let results = await withTaskGroup(of: String.self) { group in
            for node in nodes {
                group.addTask {
                    await errorCode {
                        let challenge = try await node.server.services.enrollment.challenge(deviceID: "dev-1")
                        var request = try device.register(challenge)
                        request.enrollmentToken = token
                        _ = try await node.server.services.enrollment.register(request)
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(results.filter { $0 == "none" }.count == 1, "\(results)")
        let entry = try #require(try await nodes[1].store.allowlistEntry(deviceID: "dev-1"))
        #expect(entry.tokenUsed)
    }

    @Test func outboxItemsGoToOneNodeAtATimeAndADeadNodesLeaseRunsOut() async throws {
        let database = try TestDatabase(.postgres, label: "outbox")
        let stores = [try await database.open(), try await database.open(), try await database.open()]
        for index in 0..<150 {
            try await stores[index % 3].enqueue(
                OutboxItem(connector: "c", deviceID: "dev-\(index)", action: .enroll, certificate: "PEM"), audit: nil)
        }
        // Three nodes take and complete items at once: each item is taken exactly once.
        let taken = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for (index, store) in stores.enumerated() {
                group.addTask {
                    var mine: [Int64] = []
                    while true {
                        let items = try await store.claimOutboxItems(
                            now: Date(), limit: 7, node: "node-\(index)", leaseFor: 60)
                        if items.isEmpty { break }
                        for item in items {
                            mine.append(item.id)
                            try await store.completeOutboxItem(id: item.id, at: Date())
                        }
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [[Int64]]()) { $0.append($1) }
        }
        let all = taken.flatMap { $0 }
        #expect(all.count == 150 && Set(all).count == 150, "every item once")
        #expect(taken.filter { !$0.isEmpty }.count >= 2, "the work was shared")

        // A node takes items and dies: the others get nothing until its lease runs out, then get them all.
        for index in 0..<5 {
            try await stores[0].enqueue(
                OutboxItem(connector: "c", deviceID: "late-\(index)", action: .enroll, certificate: "PEM"), audit: nil)
        }
        let held = try await stores[0].claimOutboxItems(now: Date(), limit: 10, node: "dying", leaseFor: 1.5)
        #expect(held.count == 5)
        #expect(try await stores[1].claimOutboxItems(now: Date(), limit: 10, node: "node-1", leaseFor: 60).isEmpty)
        try await Task.sleep(for: .milliseconds(1700))
        let recovered = try await stores[2].claimOutboxItems(now: Date(), limit: 10, node: "node-2", leaseFor: 60)
        #expect(Set(recovered.map(\.id)) == Set(held.map(\.id)))
        #expect(held.allSatisfy { !$0.resumed } && recovered.allSatisfy(\.resumed), "the taker knows to look first")
        for store in stores { await store.close() }
    }

    @Test func periodicWorkRunsOncePerTickAcrossNodes() async throws {
        let database = try TestDatabase(.postgres, label: "periodic")
        let stores = [try await database.open(), try await database.open(), try await database.open()]
        let start = Date()
        for tick in 0..<4 {
            let now = start + Double(tick) * 2
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for (index, store) in stores.enumerated() {
                    for _ in 0..<3 {
                        group.addTask {
                            try await store.claimPeriodicRun(
                                task: "expiry-scan", interval: 2, now: now, node: "node-\(index)")
                        }
                    }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(winners == 1, "tick \(tick): exactly one node runs it")
        }
        for store in stores { await store.close() }
    }
}
