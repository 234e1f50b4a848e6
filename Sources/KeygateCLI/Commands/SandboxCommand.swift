import ArgumentParser
import Foundation
import KeygateSandbox
import Logging

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a local stand-in for Azure: DPS, IoT Hub, IoT Central, Key Vault and AAD.",
        subcommands: [Start.self, Inspect.self, Faults.self],
        defaultSubcommand: Start.self)

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "start",
            abstract: "Start the sandbox (the default: `keygate sandbox --data-dir DIR`).",
            discussion: """
                Makes its own CA and TLS certificate in the data folder on first start, keeps its state there,
                prints the connection facts as JSON and writes them to DATA-DIR/connection.json.
                Faults: --fault-rate 0.3 fails 30% of calls with the --fault-kinds given (429 with Retry-After,
                500, 503, timeout: an answer only after --fault-timeout seconds, drop: the connection closes);
                --quota applies Azure's published limits. Change them at run time with `keygate sandbox faults`.
                """)

        @Option(name: .long, help: "The sandbox's data folder (created if missing).") var dataDir: String
        @Option(
            name: .long, parsing: .singleValue, help: "Another host name or IP for the TLS certificate (repeatable).")
        var host: [String] = []
        @Option(name: .long, help: "Address to listen on.") var listen: String = "127.0.0.1"
        @Option(name: .long, help: "HTTPS port (0: any free port).") var httpsPort: Int = 8443
        @Option(
            name: .long, help: "MQTT (TLS) port for DPS and hub devices; Microsoft's SDKs need 8883 (0: any free port)."
        )
        var mqttPort: Int = 8883
        @Flag(name: .long, help: "Do not listen for MQTT.") var noMqtt = false
        @Flag(
            name: .long,
            help: "Keep the state in memory only (not in DIR/state.json): for benchmarks with tens of thousands of devices.")
        var inMemory = false
        @OptionGroup var faults: FaultOptions
        @Option(name: .long, help: "Log level.") var logLevel: String = "info"

        func run() async throws {
            var logger = Logger(label: "keygate-sandbox")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            var options = SandboxServer.Options(dataDirectory: dataDir)
            options.persistState = !inMemory
            options.hosts = host
            options.listenHost = listen
            options.httpsPort = httpsPort
            options.mqttPort = noMqtt ? nil : mqttPort
            let change = try faults.change()
            if change.hasAnyValue {
                options.faults = change
                options.faultSurfaces = try faults.surfaces() ?? []
            }
            try await SandboxServer(options: options, logger: logger).run { connection in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                if let data = try? encoder.encode(connection) {
                    FileHandle.standardOutput.write(data + Data("\n".utf8))
                }
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a running sandbox's enrollments, registrations and hub devices with telemetry counts.")

        @Option(name: .long, help: "The running sandbox's data folder (holds connection.json).") var dataDir: String
        @Flag(help: "Print the JSON.") var json = false

        func run() async throws {
            let inventory: SandboxInventory
            do {
                inventory = try await SandboxControlClient(dataDirectory: dataDir).inventory()
            } catch let error as SandboxControlError {
                throw CLIError(error.message)
            } catch {
                throw CLIError(
                    "cannot reach the sandbox of \(dataDir) (is `keygate sandbox --data-dir \(dataDir)` running?): \(error)"
                )
            }
            if json { return try printJSON(inventory) }
            print("DPS ID scope \(inventory.idScope), IoT Hub \(inventory.hubHostName)")
            print("")
            print("Enrollments")
            printTable(
                header: ["ID", "KIND", "ATTESTATION", "STATUS", "PRIMARY", "SECONDARY"],
                rows: inventory.enrollments.map {
                    [
                        $0.id, $0.kind, $0.attestation, $0.provisioningStatus,
                        $0.primaryThumbprint.map { String($0.prefix(16)) + "…" } ?? "-",
                        $0.secondaryThumbprint.map { String($0.prefix(16)) + "…" } ?? "-",
                    ]
                })
            print("")
            print("Registrations")
            printTable(
                header: ["REGISTRATION", "STATUS", "HUB", "DEVICE", "GROUP"],
                rows: inventory.registrations.map {
                    [
                        $0.registrationId, $0.status, $0.assignedHub ?? "-", $0.deviceId ?? "-",
                        $0.enrollmentGroupId ?? "-",
                    ]
                })
            print("")
            print("Hub devices")
            printTable(
                header: ["DEVICE", "STATUS", "AUTH", "CONNECTED", "MESSAGES"],
                rows: inventory.devices.map {
                    [
                        $0.deviceId, $0.status, $0.authentication, $0.connected ? "yes" : "no",
                        String($0.telemetryMessages),
                    ]
                })
        }
    }

    struct Faults: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or change a running sandbox's injected faults and quotas.",
            discussion: """
                Without changes it shows the settings and how many calls were failed or passed per surface.
                Examples:
                  keygate sandbox faults --data-dir DIR --surface keyvault --down
                  keygate sandbox faults --data-dir DIR --surface keyvault --up
                  keygate sandbox faults --data-dir DIR --fault-rate 0.3 --fault-kinds 429,500,timeout,drop
                  keygate sandbox faults --data-dir DIR --quota on
                """)

        @Option(name: .long, help: "The running sandbox's data folder (holds connection.json).") var dataDir: String
        @OptionGroup var faults: FaultOptions
        @Flag(name: .long, help: "Make the surfaces fail every call with 503.") var down = false
        @Flag(name: .long, help: "Bring the surfaces back up.") var up = false
        @Flag(help: "Print the JSON.") var json = false

        func validate() throws {
            if down && up { throw ValidationError("--down and --up exclude each other") }
        }

        func run() async throws {
            var change = try faults.change()
            if down { change.down = true }
            if up { change.down = false }
            let client = try SandboxControlClient(dataDirectory: dataDir)
            let report: FaultInjector.Report
            if change.hasAnyValue {
                let surfaces: [SandboxSurface?] = try faults.surfaces() ?? [nil]
                var last: FaultInjector.Report?
                for surface in surfaces {
                    last = try await client.set(change, surface: surface)
                }
                report = last!
            } else {
                report = try await client.report()
            }
            if json { return try printJSON(report) }
            let header = ["SURFACE", "RATE", "KINDS", "DOWN", "QUOTA", "FAILED", "PASSED", "REFUSED"]
            var rows: [[String]] = []
            for surface in SandboxSurface.allCases {
                let settings = report.settings[surface] ?? FaultSettings()
                rows.append([
                    surface.rawValue, String(format: "%.2f", settings.rate),
                    settings.kinds.map(\.rawValue).joined(separator: ","), settings.down ? "yes" : "no",
                    settings.quota ? "on" : "off", String(report.injected[surface] ?? 0),
                    String(report.passed[surface] ?? 0), String(report.refused[surface] ?? 0),
                ])
            }
            printTable(header: header, rows: rows)
            if !report.lastRefusals.isEmpty {
                print("\nRequests refused as invalid (as Azure would), newest last:")
                for line in report.lastRefusals { print("  \(line)") }
            }
        }
    }
}

/// Fault flags shared by `sandbox start` and `sandbox faults`.
struct FaultOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Surfaces to change: all (default) or a comma list of aad, keyvault, dps-service, dps-device, hub, central."
    )
    var surface: String?
    @Option(name: .long, help: "Share of calls that fail, 0 to 1.") var faultRate: Double?
    @Option(name: .long, help: "Kinds of failure: 429,500,503,timeout,drop (default all).") var faultKinds: String?
    @Option(name: .long, help: "Seconds a timeout fault waits before answering.") var faultTimeout: Double?
    @Option(name: .long, help: "Retry-After seconds of injected 429 and 503 answers.") var retryAfter: Int?
    @Option(name: .long, help: "Apply Azure's published limits: on or off.") var quota: String?
    @Option(name: .long, help: "With --quota on: calls per window instead of the published limit.") var quotaLimit: Int?
    @Option(name: .long, help: "With --quota-limit: the window in seconds (default 60).") var quotaWindow: Double?

    func change() throws -> FaultSettings.Change {
        var change = FaultSettings.Change(
            rate: faultRate, timeoutSeconds: faultTimeout, retryAfterSeconds: retryAfter, quotaLimit: quotaLimit,
            quotaWindowSeconds: quotaWindow)
        if let faultRate, !(0...1).contains(faultRate) { throw ValidationError("--fault-rate is between 0 and 1") }
        if let faultKinds {
            change.kinds = try faultKinds.split(separator: ",").map { name in
                guard let kind = FaultKind(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("unknown fault kind '\(name)'; use 429, 500, 503, timeout, drop")
                }
                return kind
            }
        }
        if let quota {
            guard quota == "on" || quota == "off" else { throw ValidationError("--quota is on or off") }
            change.quota = quota == "on"
        }
        return change
    }

    /// The surfaces named, or `nil` for all.
    func surfaces() throws -> [SandboxSurface]? {
        guard let surface, surface != "all" else { return nil }
        return try surface.split(separator: ",").map { name in
            guard let value = SandboxSurface(rawValue: String(name)) else {
                throw ValidationError(
                    "unknown surface '\(name)'; use all or \(SandboxSurface.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            return value
        }
    }
}

extension FaultSettings.Change {
    var hasAnyValue: Bool {
        rate != nil || kinds != nil || down != nil || quota != nil || timeoutSeconds != nil || retryAfterSeconds != nil
            || quotaLimit != nil || quotaWindowSeconds != nil
    }
}
