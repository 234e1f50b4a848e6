import ArgumentParser
import Foundation
import KeygateServer
import NIOHTTP1

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Create and inspect device groups and their policies.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Rotate.self])

    /// Policy options shared by create and update; unset options leave the policy as it is.
    struct PolicyOptions: ParsableArguments {
        @Option(help: "Accepted attestation methods, comma-separated: ddk, x509, symmetric-key, token (EST with a one-time token).") var attestation:
            String?
        @Option(help: "Minimum assurance: 1 (symmetric-key), 2 (ddk), 3 (x509).") var minAssurance: Int?
        @Option(help: "Certificate profile (device).") var profile: String?
        @Option(help: "Allowed device key algorithms, comma-separated (ecdsa-p256, ecdsa-p384, rsa-3072, ed25519).")
        var keyAlgorithm: String?
        @Option(help: "Certificate validity in days.") var validityDays: Int?
        @Option(
            help: "Certificate validity as a duration (e.g. 10m, 12h), for short-lived certificates (at least 60s).")
        var validity: String?
        @Option(help: "What quarantine does to certificates: hold (certificateHold) or revoke.")
        var quarantineAction: String?
        @Option(help: "Whether re-authorization releases held certificates (true) or revokes them (false).")
        var releaseHeld: Bool?
        @Option(help: "Whether a renewal may keep the current key (default false: a new key each time).")
        var allowKeyReuse: Bool?
        @Option(help: "Renewal opens after this fraction of the lifetime (0-1).") var renewAfter: Double?
        @Option(help: "Days after expiry a device may still renew by re-attesting.") var renewAfterExpiryDays: Int?
        @Option(help: "auto or manual (devices wait for `keygate device approve`).") var approval: String?
        @Option(help: "The connector that enrolls the group's devices in Azure.") var connector: String?
        @Option(parsing: .singleValue, help: "x509: a bootstrap (manufacturer) CA certificate file (repeatable).")
        var bootstrapCa: [String] = []
        @Option(help: "symmetric-key: the group key (base64).") var symmetricKey: String?
        @Flag(help: "symmetric-key: generate a group key (printed once).") var generateSymmetricKey = false
        @Option(
            help: """
                ddk: what a device must hold at its first registration: token (default: a one-time enrollment \
                token, generated when it is allowlisted, or a pinned key), pinned (its epoch-0 key pinned on the \
                allowlist) or open (first come, first registered: anyone who knows a device ID can take it).
                """)
        var firstContact: String?

        func request(name: String?) throws -> GroupRequest {
            var request = GroupRequest(name: name)
            request.attestationMethods = attestation.map {
                $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            }
            request.minimumAssurance = minAssurance
            request.profile = profile
            request.keyAlgorithms = keyAlgorithm.map {
                $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            }
            request.validityDays = validityDays
            if let validity {
                guard let seconds = try? parseDuration(validity) else {
                    throw ValidationError("--validity takes a duration like 90s, 10m, 12h or 30d")
                }
                request.validitySeconds = Int(seconds)
            }
            request.quarantineAction = quarantineAction
            request.releaseHeldOnReauthorize = releaseHeld
            request.allowKeyReuse = allowKeyReuse
            request.renewAfterFraction = renewAfter
            request.renewAfterExpiryDays = renewAfterExpiryDays
            request.approval = approval
            request.connector = connector
            if !bootstrapCa.isEmpty {
                request.bootstrapCAs = try bootstrapCa.flatMap { file -> [String] in
                    guard let data = FileManager.default.contents(atPath: file) else {
                        throw ValidationError("cannot read \(file)")
                    }
                    return splitPEMCertificates(String(decoding: data, as: UTF8.self))
                }
            }
            request.symmetricKey = symmetricKey
            request.generateSymmetricKey = generateSymmetricKey ? true : nil
            if let firstContact, !["token", "pinned", "open"].contains(firstContact) {
                throw ValidationError("--first-contact takes token, pinned or open")
            }
            request.firstContact = firstContact
            return request
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a group.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The group name (letters, digits, - and _).") var name: String
        @OptionGroup var policy: PolicyOptions

        func run() async throws {
            let request = try policy.request(name: name)
            let group = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.post("/admin/v1/groups", body: request, as: GroupBody.self)
                }
            }
            printGroup(group)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a group's policy (only the options given).")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The group name.") var name: String
        @OptionGroup var policy: PolicyOptions

        func run() async throws {
            let request = try policy.request(name: nil)
            let group = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.send(
                        method: .PATCH, path: "/admin/v1/groups/\(name)",
                        body: Array(try JSONEncoder().encode(request)), as: GroupBody.self)
                }
            }
            printGroup(group)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List groups.")
        @OptionGroup var connection: AdminConnectionOptions

        func run() async throws {
            struct Groups: Codable { var groups: [GroupBody] }
            let result = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/groups", as: Groups.self)
                }
            }
            print(
                pad("NAME", 20) + pad("METHODS", 28) + pad("MIN", 4) + pad("APPROVAL", 9) + pad("FIRST", 9)
                    + "VALIDITY")
            for g in result.groups {
                let first = g.attestationMethods.contains("ddk") ? (g.firstContact == "open" ? "OPEN(!)" : g.firstContact) : "-"
                print(
                    pad(g.name, 20) + pad(g.attestationMethods.joined(separator: ","), 28)
                        + pad("\(g.minimumAssurance)", 4)
                        + pad(g.approval, 9) + pad(first, 9) + "\(g.validityDays)d")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a group's policy.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The group name.") var name: String
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let group = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/groups/\(name)", as: GroupBody.self)
                }
            }
            if json { return try printJSON(group) }
            printGroup(group)
        }
    }
}

extension GroupCommand {
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Renew every enrolled device of a group, as a paced campaign.",
            discussion: """
                Devices whose certificate predates the campaign are asked to renew, --per-minute devices per \
                minute in device-ID order (their agents learn it from GET /device/v1/renewal). Use it after a \
                CA or policy change. The command follows the progress until every device renewed, or until \
                --timeout; the campaign goes on on the server either way.
                """)
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The group name.") var name: String
        @Option(help: "Devices asked to renew per minute.") var perMinute: Int = 60
        @Option(help: "Why (kept in the audit log).") var reason: String = "rotation"
        @Flag(help: "Start the campaign and return without following it.") var noWait = false
        @Option(help: "Stop following after this long (e.g. 30m).") var timeout: String = "24h"

        func run() async throws {
            let limit = try parseDuration(timeout)
            let body = try JSONSerialization.data(withJSONObject: ["perMinute": perMinute, "reason": reason])
            let started = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.send(
                        method: .POST, path: "/admin/v1/groups/\(name)/rotation", body: Array(body),
                        as: RotationBody.self)
                }
            }
            let minutes = Double(started.devices) / Double(max(1, perMinute))
            print(
                "Rotation of \(name) started: \(started.devices) enrolled device(s), \(perMinute) per minute "
                    + String(format: "(all asked within %.1f min)", minutes))
            if noWait { return }
            let bar = ProgressBar(total: started.devices, label: "renewed")
            let deadline = Date() + limit
            var latest = started
            while latest.renewed < latest.devices && Date() < deadline {
                try await Task.sleep(for: .seconds(2))
                latest = try await runReportingErrors {
                    try await AdminClient.with(try connection.resolve()) {
                        try await $0.get("/admin/v1/groups/\(name)/rotation", as: RotationBody.self)
                    }
                }
                bar.update(latest.renewed)
            }
            bar.finish()
            print("\(latest.renewed) of \(latest.devices) device(s) renewed; \(latest.asked) asked so far")
            if latest.renewed < latest.devices {
                throw ExitCode(1)
            }
        }
    }
}

func printGroup(_ g: GroupBody) {
    print("Group \(g.name)")
    print("  attestation     \(g.attestationMethods.joined(separator: ", ")) (minimum assurance \(g.minimumAssurance))")
    let validity = g.validitySeconds.map { "\($0) seconds" } ?? "\(g.validityDays) days"
    print("  certificate     profile \(g.profile), \(g.keyAlgorithms.joined(separator: ", ")), \(validity)")
    print(
        "  renewal         after \(Int(g.renewAfterFraction * 100))% of the lifetime; \(g.renewAfterExpiryDays) days of grace after expiry"
    )
    print("  approval        \(g.approval)")
    print(
        "  quarantine      \(g.quarantineAction) certificates; re-authorization "
            + (g.releaseHeldOnReauthorize ? "releases held ones" : "revokes held ones"))
    if g.allowKeyReuse { print("  key reuse       allowed on renewal") }
    if let connector = g.connector { print("  connector       \(connector)") }
    if !g.bootstrapCAs.isEmpty { print("  bootstrap CAs   \(g.bootstrapCAs.count)") }
    if g.attestationMethods.contains("ddk") {
        switch g.firstContact {
        case "open": print("  first contact   OPEN (!): anyone who knows a device ID can register it first")
        case "pinned": print("  first contact   pinned (the epoch-0 key must be pinned on the allowlist)")
        default: print("  first contact   token (a one-time enrollment token or a pinned key)")
        }
    }
    if g.hasSymmetricKey { print("  group key       set (sealed)") }
    if let key = g.symmetricKey {
        print("")
        print("Group key (shown once; devices derive theirs with HMAC-SHA256(key, deviceId)):")
        print("  \(key)")
    }
}

func splitPEMCertificates(_ text: String) -> [String] {
    text.components(separatedBy: "-----END CERTIFICATE-----").dropLast().map {
        $0.trimmingCharacters(in: .whitespacesAndNewlines) + "\n-----END CERTIFICATE-----\n"
    }
}
