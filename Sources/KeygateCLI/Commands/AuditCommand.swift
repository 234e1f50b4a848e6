import ArgumentParser
import Foundation
import KeygateServer

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read, export and verify the keyed, hash-chained audit log.",
        subcommands: [List.self, Verify.self, Export.self, Checkpoint.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List audit events, oldest first.")

        @OptionGroup var connection: AdminConnectionOptions
        @Option(
            name: [.customLong("subject"), .customLong("device")],
            help: "Only events about this subject (a device ID, a serial, a group).") var subject: String?
        @Option(name: .long, help: "Only events since this time (ISO 8601) or duration ago (24h).") var since: String?
        @Option(name: .long, help: "At most this many, the newest.") var limit: Int = 100
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            struct Events: Codable { var events: [AuditEventBody] }
            var query = ["limit=\(limit)"]
            if let subject {
                query.append(
                    "subject=\(subject.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? subject)")
            }
            if let since {
                query.append("since=\(since.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? since)")
            }
            let result = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/audit?" + query.joined(separator: "&"), as: Events.self)
                }
            }
            if json { return try printJSON(result) }
            for e in result.events {
                let details = e.details.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(
                    separator: " ")
                print(
                    "\(pad(String(e.sequence), 7))\(pad(format(e.at), 22))\(pad(e.actor, 20))\(pad(e.action, 24))\(e.subject) \(details)"
                )
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit chain and its checkpoints; exits 1 and names the first bad entry.",
            discussion: """
                Every entry's MAC is recomputed with the audit key (kept sealed outside the database) and every \
                signed checkpoint in the checkpoint file is checked against the log: an altered entry, history \
                rewritten and re-chained, or entries deleted after the newest checkpoint are reported.
                """)

        @OptionGroup var connection: AdminConnectionOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let result = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/audit/verify", as: AuditVerifyBody.self)
                }
            }
            if json {
                try printJSON(result)
            } else if result.intact {
                let anchored = result.newestCheckpoint.map { "newest checkpoint at entry \($0)" } ?? "no checkpoint yet"
                let keyed = result.keyedFrom.map { "keyed from entry \($0)" } ?? "not keyed"
                print("audit chain intact (\(keyed); \(result.checkpoints ?? 0) checkpoints checked, \(anchored))")
            } else {
                print("audit chain BROKEN at entry \(result.firstBadSequence ?? 0): \(result.reason ?? "")")
            }
            if !result.intact { throw ExitCode(1) }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the audit log as JSON lines (for a SIEM), oldest first.",
            discussion: """
                One JSON object per line: sequence, at, actor, action, subject, details, previousHash, hash. \
                --after N continues an earlier export (give the last sequence it wrote); --follow keeps polling \
                for new entries.
                """)

        @OptionGroup var connection: AdminConnectionOptions
        @Option(help: "Only entries after this sequence number.") var after: Int64 = 0
        @Option(name: .shortAndLong, help: "Append to this file instead of writing to standard output.") var output:
            String?
        @Flag(help: "Keep polling for new entries (every 2 s) until interrupted.") var follow = false

        func run() async throws {
            struct Events: Codable { var events: [AuditEventBody] }
            let sink: FileHandle
            if let output {
                if !FileManager.default.fileExists(atPath: output) {
                    guard FileManager.default.createFile(
                        atPath: output, contents: nil, attributes: [.posixPermissions: 0o600])
                    else { throw ValidationError("cannot create \(output)") }
                }
                guard let handle = FileHandle(forWritingAtPath: output) else {
                    throw ValidationError("cannot write \(output)")
                }
                handle.seekToEndOfFile()
                sink = handle
            } else {
                sink = FileHandle.standardOutput
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            var last = after
            var written = 0
            try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) { client in
                    while true {
                        let page = try await client.get(
                            "/admin/v1/audit?after=\(last)&limit=1000", as: Events.self)
                        var lines = Data()
                        for event in page.events {
                            lines.append(try encoder.encode(event))
                            lines.append(UInt8(ascii: "\n"))
                        }
                        if !lines.isEmpty { sink.write(lines) }
                        written += page.events.count
                        last = page.events.last?.sequence ?? last
                        if page.events.count < 1000 {
                            guard follow else { break }
                            try await Task.sleep(for: .seconds(2))
                        }
                    }
                }
            }
            if output != nil {
                print("\(written) entries written to \(output!) (last sequence \(last))")
            }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign the audit chain's head into the checkpoint file now (the server also does every minute).")

        @OptionGroup var connection: AdminConnectionOptions

        func run() async throws {
            struct Written: Codable { var written: Bool }
            let result = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.post("/admin/v1/audit/checkpoint", body: [String: String](), as: Written.self)
                }
            }
            print(result.written ? "checkpoint written" : "the newest entry is already checkpointed")
        }
    }
}
