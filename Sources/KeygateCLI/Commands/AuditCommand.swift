import ArgumentParser
import Foundation
import KeygateServer

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read and verify the hash-chained audit log.",
        subcommands: [List.self, Verify.self])

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
            abstract: "Check the audit chain; exits 1 and names the first bad entry if it was altered.")

        @OptionGroup var connection: AdminConnectionOptions

        func run() async throws {
            let result = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/audit/verify", as: AuditVerifyBody.self)
                }
            }
            if result.intact {
                print("audit chain intact")
            } else {
                print("audit chain BROKEN at entry \(result.firstBadSequence ?? 0): \(result.reason ?? "")")
                throw ExitCode(1)
            }
        }
    }
}
