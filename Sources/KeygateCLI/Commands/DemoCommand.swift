import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import KeygateHTTP
import KeygateAgent
import KeygateAttestation
import KeygateDomain
import KeygateMQTT
import KeygatePKI
import KeygateSandbox
import KeygateServer
import KeygateStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// `keygate demo`: the whole flow on this machine with embedded defaults. A sandbox stands in for
/// Azure, a Keygate server runs on a temporary data folder, a group enrolls N simulated devices
/// through a DPS connector, and each device goes through the steps to sending telemetry.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole flow locally: sandbox Azure, a Keygate server and N simulated devices.",
        discussion: """
            Everything lives in a temporary folder (--keep to keep it): the sandbox (DPS, IoT Hub), a software CA,
            SQLite. Steps: 1 group with a DPS connector, 2 allowlist, 3 the device attests (DDK), 4 Keygate signs
            its CSR, 5 the outbox creates its DPS enrollment, 6 the device learns it is confirmed, 7 it registers
            with DPS, 8 connects to the assigned IoT Hub with its certificate, 9 sends telemetry.
            Prints the first device's timeline and, for all, how many reached each step with p50/p99.
            Exits 0 only if every device reached every step and DPS holds exactly one enrollment per device.
            """)

    @Option(help: "How many simulated devices.") var devices: Int = 10
    @Option(help: "Share of DPS service calls the sandbox fails (429, 500, 503, dropped connections).")
    var faultRate: Double = 0
    @Option(help: "How devices register with DPS: https or mqtt.") var dpsTransport: String = "https"
    @Option(help: "Enroll through dps or iot-central.") var connector: String = "dps"
    @Flag(help: "With --fault-rate: also answer some calls only after the client's timeout (slow).") var timeouts =
        false
    @Option(help: "Telemetry messages per device.") var messages: Int = 3
    @Option(help: "Devices running at once.") var concurrency: Int = 50
    @Flag(help: "Keep the temporary folder and print where it is.") var keep = false
    @Option(
        help: "Run Keygate on this empty PostgreSQL database (postgres://USER@HOST:PORT/DATABASE) instead of SQLite.")
    var database: String?

    func validate() throws {
        guard (1...10_000).contains(devices) else { throw ValidationError("--devices must be 1 to 10,000") }
        guard (0...0.9).contains(faultRate) else { throw ValidationError("--fault-rate must be 0 to 0.9") }
        guard DeviceRunner.Transport(rawValue: dpsTransport) != nil else {
            throw ValidationError("--dps-transport is https or mqtt")
        }
        guard (1...1000).contains(messages) else { throw ValidationError("--messages must be 1 to 1,000") }
        guard connector == "dps" || connector == "iot-central" else {
            throw ValidationError("--connector is dps or iot-central")
        }
        guard (1...1000).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1,000") }
    }

    func run() async throws {
        let folder = NSTemporaryDirectory() + "keygate-demo-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { if !keep { try? FileManager.default.removeItem(atPath: folder) } }
        var logger = Logger(label: "keygate-demo")
        logger.logLevel = .critical

        // The sandbox: DPS, IoT Hub, Key Vault, on free ports.
        say("starting the Azure sandbox")
        var sandboxOptions = SandboxServer.Options(dataDirectory: folder + "/sandbox")
        sandboxOptions.httpsPort = 0
        sandboxOptions.mqttPort = 0
        if faultRate > 0 {
            // Keygate's Azure clients give up on an attempt after 10 s: a timeout fault answers after 11.
            sandboxOptions.faults = .init(
                rate: faultRate, kinds: [.throttle, .serverError, .unavailable, .drop] + (timeouts ? [.timeout] : []),
                timeoutSeconds: 11, retryAfterSeconds: 1)
            sandboxOptions.faultSurfaces = [.dpsService, .central]
        }
        let sandbox = try await BackgroundServer.start(SandboxServer(options: sandboxOptions, logger: logger).run)
        defer { sandbox.cancel() }
        let azure = sandbox.ready

        // Keygate: a software CA on a temporary data folder, served on free ports.
        say("creating a Keygate CA and starting the server")
        var options = KeygateInitializer.Options()
        options.httpsPort = 0
        // Every simulated device reaches Keygate from 127.0.0.1: no per-address rate limit.
        options.deviceRequestsPerSecond = 0
        options.httpPort = 0
        options.passphrase = "demo-" + UUID().uuidString
        options.database = database
        let directory = DataDirectory(path: folder + "/keygate")
        _ = try await runReportingErrors { try await KeygateInitializer(directory: directory, options: options).run() }
        let server = try await KeygateServer.load(directory: directory, passphrase: options.passphrase, logger: logger)
        let running = try await BackgroundServer.start(server.run)
        defer { running.cancel() }
        let ports = running.ready
        let keygateURL = "https://127.0.0.1:\(ports.https)"
        let rootFile = directory.path(server.configuration.root.certificate)

        // Steps 1 and 2: a connector, a group that uses it, the allowlist.
        let services = server.services
        let connectorName = connector == "dps" ? "sandbox-dps" : "sandbox-central"
        var request = ConnectorRequest(name: connectorName, type: connector == "dps" ? "dps" : "iot-central")
        request.globalEndpoint = azure.dps.deviceEndpoint
        request.caCertificate = azure.caCertificate
        if connector == "dps" {
            request.connectionString = azure.dps.serviceConnectionString
            request.idScope = azure.dps.idScope
            request.hubConnectionString = azure.hub.registryConnectionString
        } else {
            // IoT Central learns its ID scope from the first device's credentials.
            request.appUrl = azure.central.appURL
            request.apiToken = azure.central.apiToken
        }
        _ = try await services.connectors.add(request, actor: "demo")
        var group = GroupRequest(name: "demo")
        group.attestationMethods = ["ddk"]
        group.validityDays = 30
        group.connector = connectorName
        _ = try await services.fleet.createGroup(group, actor: "demo")
        let ids = (0..<devices).map { String(format: "demo-device-%04d", $0) }
        // The group's first contact is `token` (the default): each device is staged with a one-time
        // enrollment token, which it presents when it registers, so nobody else can register it first.
        let staged = try await services.fleet.importAllowlist(
            AllowlistImportRequest(entries: ids.map { .init(deviceId: $0, group: "demo") }), actor: "demo")
        let tokens = staged.tokens ?? [:]
        say(
            "group demo with connector \(connectorName) (\(connector)); \(devices) devices allowlisted, "
                + "each with a one-time enrollment token")

        // Steps 3 to 9, per device, in this process.
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(rootFile)
        var httpConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        httpConfiguration.connectionPool = .init(
            idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        defer { _ = http.shutdown() }
        var runner = DeviceRunner.Options()
        runner.transport = DeviceRunner.Transport(rawValue: dpsTransport)!
        runner.azureTrust = try NIOSSLCertificate.fromPEMFile(azure.caCertificate)
        runner.dpsHTTPSPort = URL(string: azure.baseURL)?.port ?? 443
        runner.mqttPort = azure.dps.mqttPort ?? 8883
        runner.telemetryInterval = .milliseconds(100)
        runner.messages = messages
        let runnerOptions = runner
        let progress = ProgressBar(total: devices, label: "devices through all nine steps")
        let deviceFolder = folder + "/devices"
        @Sendable func enrollment(_ index: Int) throws -> Enrollment {
            Enrollment(
                deviceID: ids[index], credential: .ddk(attributes: Self.attributes(index), seed: []),
                client: try DeviceClient(baseURL: keygateURL, caCertificateFile: rootFile, http: http),
                folder: try StateFolder(path: deviceFolder + "/\(ids[index])"), enrollmentToken: tokens[ids[index]])
        }
        let report = await FleetSimulator(
            count: devices, concurrency: concurrency, options: runnerOptions, makeEnrollment: enrollment,
            onDeviceDone: { _, _ in progress.advance() }
        ).run()
        progress.finish()
        print("")
        print(report.summary)

        let inventory = try await SandboxControlClient(connection: azure).inventory()
        let enrollments = inventory.enrollments.filter { $0.kind == "individual" }
        let deadLetters = try await services.connectors.outbox(state: .deadLetter, deviceID: nil, limit: 10).items
        let injected = try await SandboxControlClient(connection: azure).report().injected
        let faults = (injected[.dpsService] ?? 0) + (injected[.central] ?? 0)
        var problems: [String] = []
        if report.failures > 0 { problems.append("\(report.failures) devices failed: \(report.firstError ?? "")") }
        if Set(enrollments.map(\.id)) != Set(ids) || enrollments.count != devices {
            problems.append("DPS holds \(enrollments.count) enrollments for \(devices) devices")
        }
        let short = inventory.devices.filter { $0.telemetryMessages < messages }
        if !short.isEmpty { problems.append("\(short.count) devices sent fewer than \(messages) messages") }
        if !deadLetters.isEmpty { problems.append("\(deadLetters.count) dead letters in the outbox") }
        print(
            "Sandbox: \(enrollments.count) DPS enrollments, \(inventory.devices.count) hub devices, "
                + "\(inventory.devices.map(\.telemetryMessages).reduce(0, +)) messages; \(faults) injected faults")
        if problems.isEmpty {
            problems += try await quarantineAndReauthorize(
                server: server, azure: azure, enrollment: try enrollment(0), options: runnerOptions)
        }
        if problems.isEmpty && devices >= 3 {
            problems += try await renewAndRetire(
                server: server, azure: azure, renewing: try enrollment(1), retiring: try enrollment(2),
                options: runnerOptions)
        }
        if keep { print("Kept: \(folder)") }
        guard problems.isEmpty else {
            for problem in problems { FileHandle.standardError.write(Data("demo failed: \(problem)\n".utf8)) }
            throw ExitCode(1)
        }
        print("Demo passed: every device reached every step.")
    }

    static func attributes(_ index: Int) -> DDKAttributes {
        DDKAttributes(strings: ["machine-id": "demo-\(index)", "model": "demo"])
    }

    /// Quarantines the first device (certificate on hold, DPS enrollment and hub identity disabled),
    /// shows that DPS and the hub refuse it, re-authorizes it and shows it back with a new certificate.
    private func quarantineAndReauthorize(
        server: KeygateServer, azure: SandboxServer.Connection, enrollment: Enrollment, options: DeviceRunner.Options
    ) async throws -> [String] {
        let id = enrollment.deviceID
        let services = server.services
        var problems: [String] = []
        print("")
        say("quarantining \(id)")
        let before = enrollment.folder.load()
        let oldSerial = before?.certificateSerial ?? ""
        _ = try await services.lifecycle.quarantine(deviceID: id, reason: "demo: suspected compromise", actor: "demo")
        guard try await Self.outboxSettled(services.connectors, deviceID: id) else { return ["the quarantine did not reach Azure"] }
        let held = try? await services.certificates.certificate(serial: oldSerial).status
        print("  certificate \(oldSerial.prefix(16))…  \(held?.rawValue ?? "unknown") (CRL and OCSP say so)")
        if held != .onHold { problems.append("the quarantined device's certificate is not on hold") }
        let chain = try NIOSSLCertificate.fromPEMFile(enrollment.folder.certificateFile)
        let key = DDKIdentity(deviceID: id, attributes: Self.attributes(0))
            .tlsKey(generation: UInt64(before?.tlsGeneration ?? 0))
        let identity = AzureDeviceIdentity(
            certificateChain: chain,
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem),
            trustRoots: options.azureTrust)
        do {
            _ = try await DPSHTTPSRegistration.register(
                endpoint: azure.dps.deviceEndpoint, port: options.dpsHTTPSPort, idScope: azure.dps.idScope,
                registrationID: id, identity: identity)
            problems.append("DPS still registers the quarantined device")
        } catch let failure as DPSRegistrationFailed {
            print("  DPS registration  refused: \(failure.status)")
        }
        do {
            let connection = try await IoTHubDeviceConnection.connect(
                hub: azure.hub.hostName, port: options.mqttPort, deviceID: id, identity: identity)
            await connection.close()
            problems.append("the hub still accepts the quarantined device")
        } catch let failure as MQTTClient.Failure {
            print("  IoT Hub connect   refused: \(failure)")
        }

        say("re-authorizing \(id)")
        _ = try await services.lifecycle.reauthorize(deviceID: id, actor: "demo")
        // The device attests again and gets a new certificate.
        if var state = enrollment.folder.load() {
            state.state = nil
            state.assignedHub = nil
            try enrollment.folder.save(state)
        }
        var again = options
        again.messages = 1
        try await DeviceRunner(enrollment: enrollment, options: again).run()
        let newSerial = enrollment.folder.load()?.certificateSerial ?? ""
        let telemetry = try await SandboxControlClient(connection: azure).inventory().devices.first {
            $0.deviceId == id
        }
        print(
            "  new certificate   \(newSerial.prefix(16))…  registered and connected again; \(telemetry?.telemetryMessages ?? 0) messages in all"
        )
        if newSerial.isEmpty || newSerial == oldSerial {
            problems.append("re-authorization did not issue a new certificate")
        }
        let audit = try await services.audit.events(subject: id, since: nil, limit: 100).map(\.action)
        print("  audit             \(audit.filter { $0.hasPrefix("device.") }.joined(separator: ", "))")
        if !audit.contains("device.quarantined") || !audit.contains("device.reauthorized") {
            problems.append("the audit log lacks the quarantine or the re-authorization")
        }
        return problems
    }

    /// Renews the second device's certificate over mTLS (the DPS enrollment gets it as primary, the old
    /// one as secondary; the device registers and connects with it), then retires the third device
    /// (certificate revoked, enrollment and hub identity deleted).
    private func renewAndRetire(
        server: KeygateServer, azure: SandboxServer.Connection, renewing: Enrollment, retiring: Enrollment,
        options: DeviceRunner.Options
    ) async throws -> [String] {
        var problems: [String] = []
        let services = server.services
        print("")
        say("renewing \(renewing.deviceID) over mTLS")
        let oldSerial = renewing.folder.load()?.certificateSerial ?? ""
        guard case .enrolled(let newSerial, let notAfter) = try await renewing.renew() else {
            return ["the renewal gave no certificate"]
        }
        guard try await Self.outboxSettled(services.connectors, deviceID: renewing.deviceID) else {
            return ["the renewal did not reach Azure"]
        }
        let listed = try await SandboxControlClient(connection: azure).inventory().enrollments.first {
            $0.id == renewing.deviceID
        }
        let (primary, secondary) = (listed?.primaryThumbprint ?? "none", listed?.secondaryThumbprint ?? "none")
        print("  certificate       \(oldSerial.prefix(16))… → \(newSerial.prefix(16))…  until \(notAfter)")
        print("  DPS enrollment    primary \(primary.prefix(16))… (new), secondary \(secondary.prefix(16))… (old)")
        let newRecord = try? await services.certificates.certificate(serial: newSerial)
        let oldRecord = try? await services.certificates.certificate(serial: oldSerial)
        let expectedPrimary = try newRecord.map { try Self.sha256Thumbprint(pem: $0.pem) }
        let expectedSecondary = try oldRecord.map { try Self.sha256Thumbprint(pem: $0.pem) }
        if primary != expectedPrimary || secondary != expectedSecondary {
            problems.append("the DPS enrollment does not hold the new certificate as primary and the old as secondary")
        }
        var once = options
        once.messages = 1
        try await DeviceRunner(enrollment: renewing, options: once).run()
        print("  IoT Hub           connected with the new certificate and sent a message")

        say("retiring \(retiring.deviceID)")
        let retiredSerial = retiring.folder.load()?.certificateSerial ?? ""
        _ = try await services.lifecycle.retire(deviceID: retiring.deviceID, reason: "demo: end of life", actor: "demo")
        guard try await Self.outboxSettled(services.connectors, deviceID: retiring.deviceID) else {
            return problems + ["the retirement did not reach Azure"]
        }
        let record = try? await services.certificates.certificate(serial: retiredSerial)
        let inventory = try await SandboxControlClient(connection: azure).inventory()
        let enrollmentGone = !inventory.enrollments.contains { $0.id == retiring.deviceID }
        let hubGone = !inventory.devices.contains { $0.deviceId == retiring.deviceID }
        print(
            "  certificate       \(retiredSerial.prefix(16))…  \(record?.status.rawValue ?? "?") (\(record?.revocationReason?.name ?? "-"))"
        )
        print(
            "  DPS enrollment    \(enrollmentGone ? "deleted" : "still there"); hub identity \(hubGone ? "deleted" : "still there")"
        )
        if record?.status != .revoked || !enrollmentGone || !hubGone {
            problems.append("the retirement did not revoke the certificate and delete the Azure identity")
        }
        return problems
    }

    /// The SHA-256 thumbprint DPS shows for a certificate (upper-case hex of the DER).
    static func sha256Thumbprint(pem: String) throws -> String {
        let der = try Certificate(pemEncoded: pem).serializeAsPEM().derBytes
        return SHA256.hash(data: der).map { String(format: "%02X", $0) }.joined()
    }

    /// Waits (bounded) until the device's outbox items are delivered.
    static func outboxSettled(_ connectors: ConnectorService, deviceID: String) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let items = try await connectors.outbox(state: nil, deviceID: deviceID, limit: 20).items
            if items.allSatisfy({ $0.state == .delivered }) { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    private func say(_ text: String) {
        print("==> \(text)")
    }

}
