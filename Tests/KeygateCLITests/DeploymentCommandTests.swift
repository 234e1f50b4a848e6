import Foundation
import KeygateTestSupport
import Testing

/// `keygate db copy` and `keygate node join` through the binary: a single node on SQLite moved to
/// PostgreSQL, then a second node joined, both serving the same data.
@Suite(.serialized, .tags(.binary), .fullRunOnly, .needsPostgres) struct DeploymentCommandTests {
    @Test func aSQLiteDeploymentMovesToPostgreSQLAndGainsANode() throws {
        let keygate = try KeygateBinary.locate()
        let dir = try TemporaryDirectory("deployment-cli")
        let data = dir.file("data")
        let database = try TestDatabase(.postgres, label: "copy")
        let (https, http) = (try freePort(), try freePort())
        try keygate.run(["init", "--data-dir", data, "--https-port", "\(https)", "--http-port", "\(http)"])
        do {
            let server = try keygate.serve(dataDir: data, log: dir.file("serve.log"))
            defer { _ = server.terminate() }
            try keygate.run(["group", "create", "fleet", "--data-dir", data, "--first-contact", "open"])
            for id in ["cam-1", "cam-2", "cam-3"] {
                try keygate.run(["allowlist", "add", id, "--group", "fleet", "--data-dir", data])
            }
            try keygate.run(["token", "create", "--name", "ops", "--data-dir", data])
        }

        // SQLite is one node's: joining it is refused, and says how to move it.
        let refused = try keygate.run(["node", "join", "--from", data, "--data-dir", dir.file("node2")])
        #expect(refused.status == 1 && refused.stderr.contains("nodeJoinNeedsPostgres"), "\(refused.combined)")
        #expect(refused.stderr.contains("keygate db copy"))

        let copied = try keygate.run(["db", "copy", "--from", data, "--to", database.text])
        #expect(copied.status == 0, "\(copied.combined)")
        #expect(copied.stdout.contains("Copied") && copied.stdout.contains("audit chain verifies"), "\(copied.stdout)")
        #expect(copied.stdout.contains("devices") && copied.stdout.contains("audit_events"))
        let configuration = try String(contentsOfFile: data + "/keygate.json", encoding: .utf8)
        #expect(configuration.contains("postgres://"))
        // Another deployment cannot be copied over it, nor initialised on it.
        try keygate.run(["init", "--data-dir", dir.file("other-sqlite")])
        let again = try keygate.run(["db", "copy", "--from", dir.file("other-sqlite"), "--to", database.text])
        #expect(again.status == 1 && again.stderr.contains("databaseNotEmpty"), "\(again.combined)")
        let twice = try keygate.run(["init", "--data-dir", dir.file("other"), "--database", database.text])
        #expect(twice.status == 1 && twice.stderr.contains("databaseHoldsDeployment"), "\(twice.combined)")

        // The first node now runs on PostgreSQL, and a second node joins it.
        let (https2, http2) = (try freePort(), try freePort())
        let joined = try keygate.run([
            "node", "join", "--from", data, "--data-dir", dir.file("node2"), "--https-port", "\(https2)",
            "--http-port", "\(http2)",
        ])
        #expect(joined.status == 0, "\(joined.combined)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("node2/keygate.sqlite")))
        let first = try keygate.serve(dataDir: data, log: dir.file("serve1.log"))
        defer { _ = first.terminate() }
        let second = try keygate.serve(dataDir: dir.file("node2"), log: dir.file("serve2.log"))
        defer { _ = second.terminate() }
        for folder in [data, dir.file("node2")] {
            let list = try keygate.run(["allowlist", "list", "--data-dir", folder])
            #expect(list.status == 0 && list.stdout.contains("cam-3"), "\(list.combined)")
            let verify = try keygate.run(["audit", "verify", "--data-dir", folder])
            #expect(verify.status == 0, "\(verify.combined)")
        }
        // A device added through node 2 is on node 1's list at once.
        try keygate.run(["allowlist", "add", "cam-4", "--group", "fleet", "--data-dir", dir.file("node2")])
        #expect(try keygate.run(["allowlist", "list", "--data-dir", data]).stdout.contains("cam-4"))
    }

    @Test func theDemoRunsOnPostgreSQL() throws {
        let keygate = try KeygateBinary.locate()
        let database = try TestDatabase(.postgres, label: "demo")
        let demo = try keygate.run(["demo", "--devices", "3", "--messages", "1", "--database", database.text])
        #expect(demo.status == 0 && demo.stdout.contains("Demo passed"), "\(demo.combined)")
        let bad = try keygate.run(["demo", "--devices", "1", "--database", "postgres://nobody"])
        #expect(bad.status == 1 && bad.stderr.contains("invalidDatabaseURL"), "\(bad.combined)")
    }
}
