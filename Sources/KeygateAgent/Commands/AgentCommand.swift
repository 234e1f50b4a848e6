public import ArgumentParser
import Foundation
import Synchronization
import KeygateAttestation
import KeygatePKI
import NIOSSL

/// `keygate-agent`: what runs on a device.
public struct AgentCommand: AsyncParsableCommand {
    /// The command name, help text, version and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "keygate-agent",
        abstract: "The Keygate device agent: identity, attested enrollment, renewal, status.",
        discussion: """
            A device proves who it is with DDK (keys derived from its attributes, never stored), an X.509
            bootstrap certificate, or a DPS-style symmetric key, and gets a certificate for a key that never
            leaves it.
            """,
        version: "0.1.0",
        subcommands: [Identity.self, Enroll.self, Status.self, Renew.self, Run.self, Simulate.self])

    /// Creates the command; ArgumentParser fills it from the command line.
    public init() {}
}

/// The entry point of the `keygate-agent` executable.
public enum AgentMain {
    /// Parses the command line and runs the chosen subcommand; exits the process on failure.
    public static func run() async {
        await AgentCommand.main()
    }
}

/// Where the attributes come from.
struct AttributeOptions: ParsableArguments {
    @Option(
        name: .customLong("attribute"), parsing: .singleValue,
        help: "An attribute, name=value (repeatable; overrides collected ones).")
    var attributes: [String] = []

    @Option(name: .customLong("attributes"), help: "Collect attributes from the system: linux.")
    var collector: String?

    @Option(name: .long, help: "A collector root folder (for tests and containers).")
    var attributesRoot: String = ""

    @Flag(help: "Mix a random seed kept in the state folder into the identity (for identical machines).")
    var seed = false

    func resolve() throws -> DDKAttributes {
        var collected: [String: String] = [:]
        let useLinux = collector == "linux" || (collector == nil && attributes.isEmpty)
        if let collector, collector != "linux" { throw ValidationError("--attributes takes 'linux'") }
        if useLinux { collected = AttributeCollector(root: attributesRoot).linux() }
        return try AttributeCollector.merge(collected: collected, overrides: attributes)
    }
}

struct Identity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the device's DDK epoch-0 public key and the attributes used (to pin at staging).")

    @Option(name: .long, help: "The device ID.") var deviceId: String
    @OptionGroup var attributeOptions: AttributeOptions
    @Option(name: .long, help: "State folder (only needed with --seed).") var stateDir: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let attributes = try attributeOptions.resolve()
        var seed: [UInt8] = []
        if attributeOptions.seed {
            guard let stateDir else { throw ValidationError("--seed needs --state-dir") }
            seed = try StateFolder(path: stateDir).seed(create: true)
        }
        let key = Base64URL.encode(
            DDKIdentity(deviceID: deviceId, attributes: attributes, seed: seed).epochPublicKey(0))
        if json {
            let out: [String: String] = [
                "deviceId": deviceId, "epoch0PublicKey": key, "attributes": attributes.names.joined(separator: ","),
            ]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("device ID        \(deviceId)")
            print("attributes used  \(attributes.names.joined(separator: ", "))\(seed.isEmpty ? "" : " + seed")")
            print("epoch-0 key      \(key)")
            print("pin it with: keygate allowlist add \(deviceId) --group GROUP --pin-key <file holding the key above>")
        }
    }
}

/// Connection and credential options shared by enroll and status.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "Keygate's HTTPS URL, e.g. https://keygate.example:8443.") var server: String
    @Option(name: .long, help: "PEM file of the CA that signed Keygate's server certificate.") var caCert: String
    @Option(name: .long, help: "The device ID.") var deviceId: String
    @Option(name: .long, help: "The agent's state folder.") var stateDir: String
    @Option(name: .long, help: "ddk (default), x509 or symmetric-key.") var attestation: String = "ddk"
    @OptionGroup var attributeOptions: AttributeOptions
    @Option(name: .long, help: "x509: the bootstrap certificate chain (PEM, leaf first).") var bootstrapCert: String?
    @Option(name: .long, help: "x509: the bootstrap private key (PEM).") var bootstrapKey: String?
    @Option(name: .long, help: "symmetric-key: the device key (base64).") var symmetricKey: String?
    @Option(name: .long, help: "symmetric-key: the group key (base64); the device key is derived from it.")
    var groupKey: String?
    @Option(name: .long, help: "A one-time enrollment token given at staging.") var token: String?

    func enrollment() throws -> Enrollment {
        let folder = try StateFolder(path: stateDir)
        let credential: Enrollment.Credential
        switch attestation {
        case "ddk":
            credential = .ddk(
                attributes: try attributeOptions.resolve(), seed: try folder.seed(create: attributeOptions.seed))
        case "x509":
            guard let bootstrapCert, let bootstrapKey,
                let chain = FileManager.default.contents(atPath: bootstrapCert),
                let key = FileManager.default.contents(atPath: bootstrapKey)
            else { throw ValidationError("x509 needs readable --bootstrap-cert and --bootstrap-key files") }
            let text = String(decoding: chain, as: UTF8.self)
            let pems = text.components(separatedBy: "-----END CERTIFICATE-----").dropLast().map {
                $0.trimmingCharacters(in: .whitespacesAndNewlines) + "\n-----END CERTIFICATE-----\n"
            }
            credential = .x509(chainPEM: pems, keyPEM: String(decoding: key, as: UTF8.self))
        case "symmetric-key":
            if let symmetricKey {
                credential = .symmetricKey(deviceKey: symmetricKey)
            } else if let groupKey {
                credential = .symmetricKey(
                    deviceKey: try SymmetricKeyAttestation.deriveDeviceKey(groupKey: groupKey, deviceID: deviceId))
            } else {
                throw ValidationError("symmetric-key needs --symmetric-key or --group-key")
            }
        default:
            throw ValidationError("--attestation is ddk, x509 or symmetric-key")
        }
        return Enrollment(
            deviceID: deviceId, credential: credential,
            client: try DeviceClient(baseURL: server, caCertificateFile: caCert),
            folder: folder, enrollmentToken: token)
    }
}

struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register when needed, attest, make a key, send the CSR and keep the certificate chain.",
        discussion: "The chain goes to STATE-DIR/device.crt.pem. Exit status 3: waiting for an operator's approval.")

    @OptionGroup var options: DeviceOptions
    @Option(help: "Keep asking for this many seconds while the device waits for approval.") var wait: Int = 0

    func run() async throws {
        let enrollment = try options.enrollment()
        do {
            try await enrollUntilDone(enrollment)
            try await enrollment.client.shutdown()
        } catch {
            try? await enrollment.client.shutdown()
            throw error
        }
    }

    private func enrollUntilDone(_ enrollment: Enrollment) async throws {
        let deadline = Date() + TimeInterval(wait)
        var delay = 1.0
        while true {
            let outcome = try await reportingErrors { try await enrollment.run() }
            switch outcome {
            case .enrolled(let serial, let notAfter):
                print(
                    "enrolled: certificate \(serial), valid until \(notAfter), chain in \(enrollment.folder.certificateFile)"
                )
                return
            case .pendingApproval:
                guard Date() < deadline else {
                    print("pending approval: ask an operator to run `keygate device approve \(options.deviceId)`")
                    throw ExitCode(3)
                }
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 30)
            }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the local state and, attested, the server's view.")

    @OptionGroup var options: DeviceOptions

    func run() async throws {
        let enrollment = try options.enrollment()
        if let state = enrollment.folder.load() {
            print("local: \(state.state ?? "unknown"), certificate \(state.certificateSerial ?? "none")")
        }
        let status: DeviceAPI.StatusResponse
        do {
            status = try await reportingErrors { try await enrollment.status() }
            try await enrollment.client.shutdown()
        } catch {
            try? await enrollment.client.shutdown()
            throw error
        }
        print(
            "server: \(status.state) in group \(status.group), DDK epoch \(status.epoch), certificate \(status.certificateSerial ?? "none")"
        )
    }
}

struct Renew: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Renew the certificate now: over mTLS with the current one, or by re-attesting once it expired.",
        discussion: """
            `run` renews by itself when Keygate's window opens; this is for scripts and manual checks. \
            --check only prints when Keygate wants the certificate renewed.
            """)

    @OptionGroup var options: DeviceOptions
    @Flag(help: "Only print when to renew (GET /device/v1/renewal).") var check = false

    func run() async throws {
        let enrollment = try options.enrollment()
        defer { Task { try? await enrollment.client.shutdown() } }
        guard let state = enrollment.folder.load(), state.certificateSerial != nil else {
            FileHandle.standardError.write(
                Data(
                    "error: no certificate in \(options.stateDir) (is --state-dir the folder enroll used?); run `keygate-agent enroll` first\n"
                        .utf8))
            throw ExitCode(1)
        }
        let formatter = ISO8601DateFormatter()
        if check {
            let info = try await reportingErrors { try await enrollment.renewalInfo() }
            print(
                "certificate \(info.serial) until \(formatter.string(from: info.notAfter)); renew after \(formatter.string(from: info.renewAfter)) (\(info.reason))"
            )
            return
        }
        let expired = (state.certificateNotAfter ?? .distantFuture) < Date()
        let outcome = try await reportingErrors { expired ? try await enrollment.run() : try await enrollment.renew() }
        if case .enrolled(let serial, let notAfter) = outcome {
            print(
                "renewed\(expired ? " by re-attesting" : ""): certificate \(serial) until \(formatter.string(from: notAfter))"
            )
        }
    }
}

func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as DeviceClient.APIError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    } catch let error as AgentError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    } catch let error as ExitCode {
        throw error
    } catch is CancellationError {
        throw ExitCode(1)
    } catch {
        let kind = String(reflecting: type(of: error))
        let network = ["HTTPClientError", "NIOConnectionError", "ChannelError", "IOError", "NIOSSL"].contains {
            kind.contains($0)
        }
        FileHandle.standardError.write(Data("error: \(network ? "cannot reach the server: " : "")\(error)\n".utf8))
        throw ExitCode(1)
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "The device's whole life: enroll, wait for Azure, register with DPS, connect to IoT Hub, send telemetry.",
        discussion: """
            Keeps its progress in STATE-DIR, so a restart carries on: an enrolled device is not enrolled again and
            an assigned one connects without registering again. DPS over HTTPS by default (--dps-transport mqtt for
            MQTT on --mqtt-port); the hub over MQTT with the certificate Keygate issued.
            """)

    @OptionGroup var options: DeviceOptions
    @Option(help: "https (default) or mqtt.") var dpsTransport: String = "https"
    @Option(help: "A PEM CA to trust for DPS and IoT Hub (the sandbox's); default: the system's roots.")
    var azureCaCert: String?
    @Option(help: "The DPS HTTPS port.") var dpsPort: Int = 443
    @Option(help: "The MQTT port (DPS over MQTT and IoT Hub).") var mqttPort: Int = 8883
    @Option(help: "Seconds between telemetry messages.") var interval: Double = 10
    @Option(help: "Stop after this many messages (default: run until stopped).") var messages: Int?
    @Option(help: "Seconds between renewal checks with Keygate (mTLS).") var renewalCheck: Double = 3600

    func validate() throws {
        guard renewalCheck >= 1 else { throw ValidationError("--renewal-check must be at least 1 second") }
        guard DeviceRunner.Transport(rawValue: dpsTransport) != nil else {
            throw ValidationError("--dps-transport is https or mqtt")
        }
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
    }

    func run() async throws {
        let enrollment = try options.enrollment()
        var runnerOptions = DeviceRunner.Options()
        runnerOptions.transport = DeviceRunner.Transport(rawValue: dpsTransport)!
        runnerOptions.azureTrust = try azureCaCert.map { try NIOSSLCertificate.fromPEMFile($0) }
        runnerOptions.dpsHTTPSPort = dpsPort
        runnerOptions.mqttPort = mqttPort
        runnerOptions.telemetryInterval = .milliseconds(Int(interval * 1000))
        runnerOptions.messages = messages
        runnerOptions.renewalCheckInterval = .milliseconds(Int(renewalCheck * 1000))
        let started = ContinuousClock.now
        let runner = DeviceRunner(
            enrollment: enrollment, options: runnerOptions,
            onStep: { step, at in
                print(
                    String(
                        format: "%8.3f s  %@",
                        Double((at - started).components.attoseconds) / 1e18
                            + Double((at - started).components.seconds), step.rawValue))
            },
            log: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
        do {
            try await reportingErrors { try await runner.run() }
            try await enrollment.client.shutdown()
        } catch {
            try? await enrollment.client.shutdown()
            if let failure = error as? DPSRegistrationFailed {
                FileHandle.standardError.write(Data("error: \(failure)\n".utf8))
                throw ExitCode(1)
            }
            throw error
        }
    }
}

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run N simulated devices in this process through the whole flow, with a summary per step.",
        discussion: """
            Device IDs are PREFIX-0000, PREFIX-0001, ...; allowlist them first (`keygate allowlist import`),
            in a group with a connector, and pass the tokens file the import wrote with --tokens. Each device has its own DDK attributes (machine-id = its ID) and state
            folder under STATE-DIR. Prints the first device's timeline and, for all, how many reached each step
            with p50/p99; exits 1 if any device failed.
            """)

    @Option(help: "Keygate's HTTPS URL.") var server: String
    @Option(help: "PEM file of the CA that signed Keygate's server certificate.") var caCert: String
    @Option(help: "How many devices.") var devices: Int = 10
    @Option(help: "Device ID prefix.") var prefix: String = "sim"
    @Option(help: "How many devices at once.") var concurrency: Int = 50
    @Option(help: "Folder for the devices' state folders.") var stateDir: String
    @Option(help: "https (default) or mqtt.") var dpsTransport: String = "https"
    @Option(help: "A PEM CA to trust for DPS and IoT Hub (the sandbox's).") var azureCaCert: String?
    @Option(help: "The DPS HTTPS port.") var dpsPort: Int = 443
    @Option(help: "The MQTT port.") var mqttPort: Int = 8883
    @Option(help: "Telemetry messages per device.") var messages: Int = 3
    @Option(
        help: "The one-time enrollment tokens, a CSV deviceId,token (what `keygate allowlist import` writes).")
    var tokens: String?

    func validate() throws {
        guard (1...100_000).contains(devices) else { throw ValidationError("--devices must be 1 to 100,000") }
        guard (1...1000).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1,000") }
        guard DeviceRunner.Transport(rawValue: dpsTransport) != nil else {
            throw ValidationError("--dps-transport is https or mqtt")
        }
        guard (1...1000).contains(messages) else { throw ValidationError("--messages must be 1 to 1,000") }
    }

    func run() async throws {
        var options = DeviceRunner.Options()
        options.transport = DeviceRunner.Transport(rawValue: dpsTransport)!
        options.azureTrust = try azureCaCert.map { try NIOSSLCertificate.fromPEMFile($0) }
        options.dpsHTTPSPort = dpsPort
        options.mqttPort = mqttPort
        options.telemetryInterval = .milliseconds(100)
        options.messages = messages
        let client = try DeviceClient(baseURL: server, caCertificateFile: caCert)
        let ids = (0..<devices).map { String(format: "%@-%04d", prefix, $0) }
        let root = stateDir
        var tokenByDevice: [String: String] = [:]
        if let tokens {
            guard let data = FileManager.default.contents(atPath: tokens) else {
                throw ValidationError("cannot read \(tokens)")
            }
            for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).dropFirst() {
                let fields = line.split(separator: ",", maxSplits: 1).map(String.init)
                if fields.count == 2 { tokenByDevice[fields[0]] = fields[1].trimmingCharacters(in: .whitespaces) }
            }
        }
        let tokensByDevice = tokenByDevice
        let interactive = isatty(STDERR_FILENO) == 1
        let done = Counter()
        let report = await FleetSimulator(
            count: devices, concurrency: concurrency, options: options,
            makeEnrollment: { index in
                Enrollment(
                    deviceID: ids[index],
                    credential: .ddk(attributes: DDKAttributes(strings: ["machine-id": ids[index]]), seed: []),
                    client: client, folder: try StateFolder(path: root + "/" + ids[index]),
                    enrollmentToken: tokensByDevice[ids[index]])
            },
            onDeviceDone: { _, _ in
                let count = done.increment()
                if interactive { FileHandle.standardError.write(Data("\r\(count)/\(ids.count) devices done".utf8)) }
            }
        ).run()
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        try? await client.shutdown()
        print(report.summary)
        if report.failures > 0 { throw ExitCode(1) }
    }
}

/// A counter for the progress line (bumped from the simulator's one collecting task).
final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() -> Int {
        value.withLock {
            $0 += 1
            return $0
        }
    }
}
