import ArgumentParser
import Foundation
import KeygateAttestation
import KeygatePKI
import KeygateServer
import NIOHTTP1

struct AllowlistCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allowlist", abstract: "Decide which devices may join.",
        subcommands: [Add.self, Import.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow one device to join a group.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The device ID.") var id: String
        @Option(help: "The group it joins.") var group: String
        @Option(help: "A file holding the device's DDK epoch-0 public key (from `keygate-agent identity`).") var pinKey:
            String?
        @Flag(
            name: .customLong("enrollment-token"),
            help: "Require a one-time enrollment token (generated and printed once). (--token is the admin token.)")
        var enrollmentToken = false

        func run() async throws {
            var pinned: String?
            if let pinKey {
                guard let data = FileManager.default.contents(atPath: pinKey) else {
                    throw ValidationError("cannot read \(pinKey)")
                }
                pinned = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let request = AllowlistImportRequest(
                entries: [
                    .init(deviceId: id, group: group, pinnedKey: pinned, generateToken: enrollmentToken ? true : nil)
                ],
                strict: true)
            let result = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.post("/admin/v1/allowlist", body: request, as: AllowlistImportResultBody.self)
                }
            }
            if let error = result.errors.first {
                FileHandle.standardError.write(Data("error: \(error.code): \(error.message)\n".utf8))
                throw ExitCode(1)
            }
            print(
                result.added == 1
                    ? "\(id) allowlisted in \(group)" : result.updated == 1 ? "\(id) updated" : "\(id) unchanged")
            if let token = result.tokens?[id] {
                print("enrollment token (shown once; give it to the device): \(token)")
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a CSV: header deviceId,group[,pinnedKey][,token].",
            discussion: """
                Bad rows are reported by line number and skipped; with --strict nothing is imported if any row is bad.
                Importing the same file again changes nothing. Rows go to the server in batches.
                In a group whose first contact is `token` (the default), a DDK device listed without a token or a
                pinned key gets a one-time enrollment token generated; the tokens are written, once, to
                --tokens-out (CSV deviceId,token, readable by the owner only).
                """)
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The CSV file.") var file: String
        @Flag(help: "All or nothing.") var strict = false
        @Option(help: "Rows per request.") var batchSize: Int = 5000
        @Option(help: "Where generated enrollment tokens go (default: the CSV's name with .tokens.csv).")
        var tokensOut: String?

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            let parsed = AllowlistCSV.parse(String(decoding: data, as: UTF8.self))
            if let fatal = parsed.fatal {
                FileHandle.standardError.write(Data("error: \(fatal)\n".utf8))
                throw ExitCode(1)
            }
            var problems = parsed.problems
            if strict && !problems.isEmpty {
                report(problems)
                FileHandle.standardError.write(Data("--strict: nothing imported (\(problems.count) bad rows)\n".utf8))
                throw ExitCode(1)
            }
            let started = Date()
            let progress = ProgressBar(total: parsed.rows.count, label: "rows")
            var totals = (added: 0, updated: 0, unchanged: 0)
            var tokens: [(String, String)] = []
            try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) { client in
                    var index = 0
                    while index < parsed.rows.count {
                        let batch = Array(parsed.rows[index..<min(index + max(1, batchSize), parsed.rows.count)])
                        let request = AllowlistImportRequest(entries: batch.map(\.row), strict: strict ? true : nil)
                        let result = try await client.post(
                            "/admin/v1/allowlist", body: request, as: AllowlistImportResultBody.self)
                        totals.added += result.added
                        totals.updated += result.updated
                        totals.unchanged += result.unchanged
                        tokens += (result.tokens ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                        for error in result.errors {
                            problems.append((batch[error.index].line, "\(error.code): \(error.message)"))
                        }
                        if strict && !result.errors.isEmpty { break }
                        index += batch.count
                        progress.update(index)
                    }
                }
            }
            progress.finish()
            if !tokens.isEmpty {
                let path = tokensOut ?? (file.hasSuffix(".csv") ? String(file.dropLast(4)) : file) + ".tokens.csv"
                let text = "deviceId,token\n" + tokens.map { "\($0.0),\($0.1)\n" }.joined()
                guard FileManager.default.createFile(
                    atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
                else {
                    FileHandle.standardError.write(Data("error: cannot write the generated tokens to \(path)\n".utf8))
                    throw ExitCode(1)
                }
                print("\(tokens.count) one-time enrollment tokens written to \(path) (shown once; give each to its device)")
            }
            let seconds = Date().timeIntervalSince(started)
            print(
                String(
                    format: "%d rows: %d added, %d updated, %d unchanged, %d bad (%.1f s)",
                    parsed.rows.count + parsed.problems.count,
                    totals.added, totals.updated, totals.unchanged, problems.count, seconds))
            if !problems.isEmpty {
                report(problems)
                throw ExitCode(strict ? 1 : 2)
            }
        }

        private func report(_ problems: [(Int, String)]) {
            for (line, message) in problems.sorted(by: { $0.0 < $1.0 }).prefix(50) {
                FileHandle.standardError.write(Data("line \(line): \(message)\n".utf8))
            }
            if problems.count > 50 {
                FileHandle.standardError.write(Data("... and \(problems.count - 50) more\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List allowlist entries.")
        @OptionGroup var connection: AdminConnectionOptions
        @Option(help: "Only this group.") var group: String?
        @Option(help: "At most this many (1-1000).") var limit: Int = 100

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let group { query.append("group=\(group)") }
            let list = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/allowlist?" + query.joined(separator: "&"), as: AllowlistListBody.self)
                }
            }
            print(pad("DEVICE", 32) + pad("GROUP", 16) + pad("STATE", 16) + pad("PINNED", 7) + "TOKEN")
            for e in list.entries {
                print(
                    pad(e.deviceId, 32) + pad(e.group, 16) + pad(e.state, 16)
                        + pad(e.pinnedKey == nil ? "no" : "yes", 7) + (e.hasToken ? "yes" : "no"))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a device that has not enrolled yet.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The device ID.") var id: String

        func run() async throws {
            try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.delete("/admin/v1/allowlist/\(id)")
                }
            }
            print("\(id) removed from the allowlist")
        }
    }
}
