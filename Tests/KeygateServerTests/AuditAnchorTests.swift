import Foundation
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import Logging
import Testing

/// The audit log cannot be rewritten or truncated unnoticed by someone who can write the database:
/// the chain is keyed with a secret kept outside it, and signed checkpoints anchor its head.
@Suite struct AuditAnchorTests {
    /// A deployment with a few audited changes and a checkpoint of them.
    func seeded() async throws -> TestKeygate {
        let kg = try await TestKeygate.make()
        for name in ["a", "b", "c", "d"] {
            _ = try await kg.server.services.fleet.createGroup(GroupRequest(name: name), actor: "admin:test")
        }
        return kg
    }

    func sql(_ kg: TestKeygate, _ statements: String) async throws {
        let run = try await ExternalTool.require("sqlite3").run([
            kg.directory.path(kg.server.configuration.database), statements,
        ])
        #expect(run.status == 0, "\(run.combined)")
    }

    @Test func theChainIsKeyedFromTheFirstEntryAndTheKeyIsNotInTheDatabase() async throws {
        let kg = try await seeded()
        let audit = kg.server.services.audit
        let verified = try await audit.verify()
        #expect(verified.problem == nil && verified.keyedFrom == 1)
        // The key file holds the key sealed with the CA passphrase, owner-only.
        let keyFile = kg.directory.path(AuditAnchor.keyFile)
        let text = try String(contentsOfFile: keyFile, encoding: .utf8)
        #expect(text.contains("\"sealedKey\" : \"v") && !text.contains("\"key\""))
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // Entries are MACs under that key: the plain SHA-256 of the same entry differs.
        let events = try await audit.events(after: 0, limit: 100)
        let first = try #require(events.first)
        let plain = AuditChainKey.chainHash(
            nil, previous: first.previousHash, sequence: first.sequence,
            atMilliseconds: Int64((first.at.timeIntervalSince1970 * 1000).rounded()), actor: first.actor,
            action: first.action, subject: first.subject, details: first.details)
        #expect(plain != first.hash)
        #expect(events.map(\.sequence) == Array(1...Int64(events.count)))
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func historyRewrittenAndRechainedIsDetected() async throws {
        let kg = try await seeded()
        let events = try await kg.server.services.audit.events(after: 0, limit: 100)
        #expect(events.count >= 5)
        // The attacker edits entry 3 and recomputes every later link the only way they can: without the key.
        var previous = events[1].hash
        var statements = ""
        for event in events[2...] {
            let actor = event.sequence == 3 ? "admin:nobody" : event.actor
            let hash = AuditChainKey.chainHash(
                nil, previous: previous, sequence: event.sequence,
                atMilliseconds: Int64((event.at.timeIntervalSince1970 * 1000).rounded()), actor: actor,
                action: event.action, subject: event.subject, details: event.details)
            statements +=
                "UPDATE audit_events SET actor = '\(actor)', previous_hash = '\(previous)', hash = '\(hash)' WHERE seq = \(event.sequence);\n"
            previous = hash
        }
        try await sql(kg, statements)
        let verified = try await kg.server.services.audit.verify()
        let problem = try #require(verified.problem)
        #expect(problem.sequence == 3 && problem.reason.contains("without the audit key"), "\(problem)")
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func deletingTheNewestEntriesIsDetectedByTheCheckpoint() async throws {
        let kg = try await seeded()
        let audit = kg.server.services.audit
        let checkpoint = try #require(try await audit.checkpoint())
        #expect(try await audit.checkpoint() == nil, "nothing new: no second checkpoint of the same head")
        // Deleting the newest rows leaves a chain that links perfectly, which only the checkpoint contradicts.
        try await sql(kg, "DELETE FROM audit_events WHERE seq > \(checkpoint.sequence - 2)")
        #expect(try await kg.store.verifyAuditChain() == nil)
        let verified = try await audit.verify()
        let problem = try #require(verified.problem)
        #expect(problem.reason.contains("truncated") && problem.sequence == checkpoint.sequence - 1, "\(problem)")
        #expect(verified.newestCheckpoint == checkpoint.sequence && verified.checkpoints == 1)
    }

    @Test func aFolderKeyedAtInitRefusesToStartWithoutItsKeyFile() async throws {
        let kg = try await TestKeygate.make()
        let first = try #require(try await kg.server.services.audit.events(after: 0, limit: 1).first)
        #expect(first.action == "audit.keyed" && first.details["keyedFrom"] == "1")
        try FileManager.default.removeItem(atPath: kg.directory.path(AuditAnchor.keyFile))
        await #expect(throws: KeygateError.self) {
            _ = try await KeygateServer.load(directory: kg.directory, passphrase: kg.passphrase, logger: .init(label: "t"))
        }
        #expect(!FileManager.default.fileExists(atPath: kg.directory.path(AuditAnchor.keyFile)), "no new key made")
    }

    @Test func aForgedOrDamagedCheckpointIsReported() async throws {
        let kg = try await seeded()
        let audit = kg.server.services.audit
        let checkpoint = try #require(try await audit.checkpoint())
        let path = try #require(audit.anchor?.checkpointPath)
        var forged = checkpoint
        forged.signature = String(repeating: "ab", count: 32)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(try JSONEncoder().encode(forged) + Data("\n".utf8))
        try handle.close()
        #expect(try await audit.verify().problem?.reason.contains("not signed with the audit key") == true)
        try Data("not json\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try await audit.verify().problem?.reason.contains("is not an audit checkpoint") == true)
    }

    @Test func theServerWritesACheckpointAtShutdownAndExportsPageByPage() async throws {
        let kg = try await TestKeygate.make()
        let running = try await kg.start()
        _ = try await kg.server.services.fleet.createGroup(GroupRequest(name: "late"), actor: "admin:test")
        let head = try await kg.store.auditHead()
        await running.stop()
        let checkpoints = try #require(try kg.server.services.audit.anchor?.checkpoints())
        #expect(checkpoints.last?.sequence == head.sequence && checkpoints.last?.hash == head.hash)
        #expect(try await kg.server.services.audit.verify().problem == nil)
        let page = try await kg.server.services.audit.events(after: 1, limit: 2)
        #expect(page.map(\.sequence) == [2, 3])
        #expect(page[0].previousHash != page[0].hash && page[1].previousHash == page[0].hash)
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func aLogMadeBeforeKeyingIsKeyedFromItsNextEntryAndALostKeyIsRefused()
        async throws
    {
        let kg = try await seeded()
        // Make the folder look like one from before keyed chains: plain SHA-256 links, no key file, no
        // `audit.keyed` entry.
        try await sql(kg, "UPDATE audit_events SET action = 'older.entry' WHERE action = 'audit.keyed'")
        let events = try await kg.server.services.audit.events(after: 0, limit: 100)
        var previous = AuditEvent.genesisHash
        var statements = ""
        for event in events {
            let hash = AuditChainKey.chainHash(
                nil, previous: previous, sequence: event.sequence,
                atMilliseconds: Int64((event.at.timeIntervalSince1970 * 1000).rounded()), actor: event.actor,
                action: event.action, subject: event.subject, details: event.details)
            statements += "UPDATE audit_events SET previous_hash = '\(previous)', hash = '\(hash)' WHERE seq = \(event.sequence);\n"
            previous = hash
        }
        try await sql(kg, statements)
        try FileManager.default.removeItem(atPath: kg.directory.path(AuditAnchor.keyFile))
        let upgraded = try await KeygateServer.load(directory: kg.directory, passphrase: kg.passphrase, logger: .init(label: "t"))
        let verified = try await upgraded.services.audit.verify()
        #expect(verified.problem == nil && verified.keyedFrom == Int64(events.count) + 1, "\(verified)")
        let keyed = try await upgraded.store.auditEvents(subject: "audit-chain", since: nil, limit: 5)
        #expect(keyed.filter { $0.action == "audit.keyed" }.count == 1, "\(keyed.map(\.action))")
        // Once keyed, a missing key file is not silently replaced.
        try FileManager.default.removeItem(atPath: kg.directory.path(AuditAnchor.keyFile))
        await #expect(throws: KeygateError.self) {
            _ = try await KeygateServer.load(directory: kg.directory, passphrase: kg.passphrase, logger: .init(label: "t"))
        }
    }
}
