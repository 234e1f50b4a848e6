import ArgumentParser
import Foundation
import KeygateServer

/// `keygate token`: admin API tokens with a role and an expiry.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke admin API tokens.",
        discussion: """
            Roles: admin (everything), operator (devices, groups, the allowlist, certificates, rotations, the \
            outbox; not tokens or connectors), read-only (GET only: monitoring, dashboards). The token text is \
            printed once; Keygate keeps only its hash.
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token and print it (once).")

        @OptionGroup var connection: AdminConnectionOptions
        @Option(name: .long, help: "A name for the token (audit actors read admin:NAME).") var name: String
        @Option(name: .long, help: "admin, operator or read-only (default admin).") var role: String = "admin"
        @Option(name: .long, help: "How long it lives, e.g. 30d, 12h (default: no expiry).") var expires: String?

        func validate() throws {
            guard ["admin", "operator", "read-only"].contains(role) else {
                throw ValidationError("--role is admin, operator or read-only")
            }
            if let expires, (try? parseDuration(expires)) == nil {
                throw ValidationError("--expires takes a duration such as 30d, 12h or 90m")
            }
        }

        func run() async throws {
            struct Request: Encodable {
                var name: String
                var role: String
                var expiresInSeconds: Int?
            }
            let lifetime = try expires.map { Int(try parseDuration($0)) }
            let created = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.post(
                        "/admin/v1/tokens", body: Request(name: name, role: role, expiresInSeconds: lifetime),
                        as: TokenBody.self)
                }
            }
            print(created.token ?? "")
            FileHandle.standardError.write(
                Data(
                    "token \(created.name) (\(created.role)\(created.expiresAt.map { ", expires \(format($0))" } ?? "")); keep it: it is not shown again\n"
                        .utf8))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens (never their text).")

        @OptionGroup var connection: AdminConnectionOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            struct Tokens: Codable { var tokens: [TokenBody] }
            let result = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/tokens", as: Tokens.self)
                }
            }
            if json { return try printJSON(result) }
            printTable(
                header: ["NAME", "ROLE", "CREATED", "EXPIRES", "STATE"],
                rows: result.tokens.map {
                    [
                        $0.name, $0.role, format($0.createdAt), $0.expiresAt.map(format) ?? "never",
                        $0.revokedAt != nil ? "revoked" : $0.usable ? "usable" : "expired",
                    ]
                })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: it is refused from now on.")

        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The token's name.") var name: String

        func run() async throws {
            try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) { try await $0.delete("/admin/v1/tokens/\(name)") }
            }
            print("token \(name) revoked")
        }
    }
}
