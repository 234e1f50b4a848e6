import ArgumentParser
import Foundation
import KeygateServer
import NIOHTTP1

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Inspect devices and approve them.",
        subcommands: [List.self, Show.self, Approve.self, Quarantine.self, Reauthorize.self, Retire.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices, by ID.")
        @OptionGroup var connection: AdminConnectionOptions
        @Option(
            help:
                "Only this state (allowlisted, registered, pendingApproval, approved, enrolled, quarantined, retired).")
        var state: String?
        @Option(help: "Only this group.") var group: String?
        @Option(help: "At most this many (1-1000).") var limit: Int = 100
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let state { query.append("state=\(state)") }
            if let group { query.append("group=\(group)") }
            let list = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/devices?" + query.joined(separator: "&"), as: DeviceListBody.self)
                }
            }
            if json { return try printJSON(list) }
            print(pad("DEVICE", 32) + pad("GROUP", 16) + pad("STATE", 16) + pad("METHOD", 14) + "EPOCH")
            for d in list.devices {
                print(
                    pad(d.deviceId, 32) + pad(d.group, 16) + pad(d.state, 16) + pad(d.attestationMethod ?? "-", 14)
                        + "\(d.ddkEpoch)")
            }
            if list.devices.isEmpty { print("(none)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a device: state, attestation, DDK epoch, certificates, recent audit events.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The device ID.") var id: String
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let d = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/devices/\(id)", as: DeviceBody.self)
                }
            }
            if json { return try printJSON(d) }
            print("Device \(d.deviceId)")
            print("  group        \(d.group)")
            print("  state        \(d.state)\(d.stateReason.map { " (\($0))" } ?? "")")
            print(
                "  attestation  \(d.attestationMethod ?? "none yet")\(d.assuranceLevel.map { ", assurance \($0)" } ?? "")"
            )
            print("  DDK epoch    \(d.ddkEpoch)")
            if d.failedAttempts > 0 { print("  failures     \(d.failedAttempts)") }
            if let locked = d.lockedUntil, locked > Date() { print("  locked until \(format(locked))") }
            print("  certificates")
            for c in d.certificates ?? [] {
                print("    \(c.serial)  \(c.status)  until \(format(c.notAfter))")
            }
            if (d.certificates ?? []).isEmpty { print("    none") }
            print("  recent events")
            for e in d.events ?? [] {
                let details = e.details.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(
                    separator: " ")
                print("    \(format(e.at))  \(pad(e.actor, 24))\(pad(e.action, 26))\(details)")
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a device waiting in pendingApproval; its next enroll gets a certificate.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The device ID.") var id: String

        func run() async throws {
            try await deviceAction("approve", id: id, connection: connection)
        }
    }

    struct Quarantine: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Quarantine a device: certificates on hold or revoked, DPS enrollment and hub identity disabled.",
            discussion: """
                The group's quarantineAction decides hold (certificateHold, released on re-authorization when \
                releaseHeldOnReauthorize) or revoke. The device's calls get deviceQuarantined. Azure is updated \
                through the outbox (`keygate outbox list --device ID`).
                """)
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The device ID.") var id: String
        @Option(help: "Why (kept in the audit log).") var reason: String = "manual"

        func run() async throws {
            let body = try JSONSerialization.data(withJSONObject: ["reason": reason])
            try await deviceAction("quarantine", id: id, body: Array(body), connection: connection)
        }
    }

    struct Reauthorize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a quarantined device attest again; its enrollment and hub identity are enabled again.",
            discussion: """
                The device returns to registered: its next attested enrollment issues a new certificate that \
                replaces the one in Azure. Held certificates are released or revoked per the group's policy.
                """)
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The device ID.") var id: String
        @Flag(help: "DDK: forget the device's keys so it registers again (its attributes changed).")
        var allowReregistration = false

        func run() async throws {
            let body = try JSONSerialization.data(withJSONObject: ["allowReregistration": allowReregistration])
            try await deviceAction("reauthorize", id: id, body: Array(body), connection: connection)
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire a device for good: certificates revoked, DPS enrollment and hub identity deleted.")
        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The device ID.") var id: String
        @Option(help: "Why (kept in the audit log).") var reason: String?

        func run() async throws {
            let body = try JSONSerialization.data(withJSONObject: reason.map { ["reason": $0] } ?? [:])
            try await deviceAction("retire", id: id, body: Array(body), connection: connection)
        }
    }
}

/// `POST /admin/v1/devices/{id}/{action}`, then prints the device's new state.
private func deviceAction(_ action: String, id: String, body: [UInt8]? = nil, connection: AdminConnectionOptions)
    async throws
{
    let device = try await runReportingErrors {
        try await AdminClient.with(try connection.resolve()) {
            try await $0.send(method: .POST, path: "/admin/v1/devices/\(id)/\(action)", body: body, as: DeviceBody.self)
        }
    }
    print("\(device.deviceId): \(device.state)")
}
