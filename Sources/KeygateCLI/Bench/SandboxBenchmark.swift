import AsyncHTTPClient
import Crypto
import Foundation
import Synchronization
import KeygateAgent
import KeygateAzure
import KeygatePKI
import KeygateSandbox
import NIOCore
import NIOHTTP1
import NIOSSL
import X509

/// Devices against a running sandbox over TLS MQTT: each registers with DPS (an enrollment group
/// made for the run), then all connect to the hub at once and stay connected, each sending one message.
struct SandboxBenchmark {
    let connection: SandboxServer.Connection
    let devices: Int
    let concurrency: Int
    let hold: Double

    struct Result: Codable {
        var devices: Int
        var concurrency: Int
        var registrationsPerSecond: Double
        var registerP50Milliseconds: Double
        var registerP99Milliseconds: Double
        var connectsPerSecond: Double
        var connectP50Milliseconds: Double
        var connectP99Milliseconds: Double
        /// Hub connections the sandbox reported open while all were held.
        var heldConnections: Int
        var failures: Int
        var firstError: String?

        var summary: String {
            String(
                format:
                    "%d devices (concurrency %d): DPS registration %.0f/s (p50 %.0f ms, p99 %.0f ms); hub connect %.0f/s (p50 %.1f ms, p99 %.1f ms); %d connections held; %d failures",
                devices, concurrency, registrationsPerSecond, registerP50Milliseconds, registerP99Milliseconds,
                connectsPerSecond, connectP50Milliseconds, connectP99Milliseconds, heldConnections, failures)
                + (firstError.map { " (first: \($0))" } ?? "")
        }
    }

    func run() async throws -> Result {
        guard let mqttPort = connection.dps.mqttPort else { throw CLIError("the sandbox runs without MQTT") }
        let trust = try NIOSSLCertificate.fromPEMFile(connection.caCertificate)
        let run = String(UUID().uuidString.prefix(8)).lowercased()

        // A group CA for the run and one certificate per device.
        let ca = try await CertificateAuthority.makeRoot(
            name: "Bench Group CA \(run)", organization: "Keygate Bench", signer: try SoftwareSigner.generate(.p256))
        FileHandle.standardError.write(Data("making \(devices) device certificates\n".utf8))
        var made: [(String, AzureDeviceIdentity)] = []
        for index in 0..<devices {
            let id = "bench-\(run)-\(index)"
            let key = P256.Signing.PrivateKey()
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName(id) }, privateKey: .init(key),
                attributes: .init())
            let certificate = try await ca.issue(
                csr: try CSRPolicy().check(try csr.derBytes), profile: .device, identity: .init(commonName: id),
                revocation: nil, validity: 86_400)
            made.append(
                (
                    id,
                    AzureDeviceIdentity(
                        certificateChain: [try NIOSSLCertificate(bytes: try certificate.derBytes, format: .der)],
                        privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem),
                        trustRoots: trust)
                ))
        }
        let identities = made
        try await createGroup(id: "bench-\(run)", caPEM: try ca.certificate.pemString)

        let scope = connection.dps.idScope
        let endpoint = connection.dps.deviceEndpoint
        let assignments = AssignmentBox(count: devices)
        let registering = ProgressBar(total: devices, label: "DPS registrations")
        let registered = try await Measured.run(count: devices, concurrency: concurrency, progress: registering) {
            index in
            let (id, identity) = identities[index]
            let assignment = try await DPSMQTTRegistration.register(
                endpoint: endpoint, port: mqttPort, idScope: scope, registrationID: id, identity: identity)
            assignments.set(index, assignment)
        }
        registering.finish()

        let held = ConnectionBox()
        let connecting = ProgressBar(total: devices, label: "hub connections")
        let connected = try await Measured.run(count: devices, concurrency: concurrency, progress: connecting) {
            index in
            guard let assignment = assignments.get(index) else { throw CLIError("not registered") }
            let connection = try await IoTHubDeviceConnection.connect(
                hub: assignment.assignedHub, port: mqttPort, deviceID: assignment.deviceId,
                identity: identities[index].1)
            held.add(connection)
            try await connection.send(Array("{\"bench\":\(index)}".utf8))
        }
        connecting.finish()
        FileHandle.standardError.write(Data("holding \(held.count) connections for \(hold) s\n".utf8))
        try await Task.sleep(for: .seconds(hold))
        let inventory = try await SandboxControlClient(connection: connection).inventory()
        let open = inventory.devices.filter { $0.deviceId.hasPrefix("bench-\(run)-") && $0.connected }.count
        for connection in held.all { await connection.close() }
        return Result(
            devices: devices, concurrency: concurrency, registrationsPerSecond: registered.perSecond,
            registerP50Milliseconds: registered.percentile(0.5), registerP99Milliseconds: registered.percentile(0.99),
            connectsPerSecond: connected.perSecond, connectP50Milliseconds: connected.percentile(0.5),
            connectP99Milliseconds: connected.percentile(0.99), heldConnections: open,
            failures: registered.failures + connected.failures,
            firstError: registered.firstError ?? connected.firstError)
    }

    /// The run's enrollment group, through the DPS service API with the sandbox's SAS policy.
    private func createGroup(id: String, caPEM: String) async throws {
        let access = try SharedAccessSignatureToken.ConnectionString(connection.dps.serviceConnectionString)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(connection.caCertificate)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        defer { _ = http.shutdown() }
        var request = HTTPClientRequest(url: "https://\(access.hostName)/enrollmentGroups/\(id)?api-version=2021-10-01")
        request.method = .PUT
        request.headers.add(name: "Authorization", value: try access.token())
        request.headers.add(name: "Content-Type", value: "application/json")
        let body: [String: Any] = [
            "enrollmentGroupId": id,
            "attestation": ["type": "x509", "x509": ["signingCertificates": ["primary": ["certificate": caPEM]]]],
        ]
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response = try await http.execute(request, timeout: .seconds(30))
        guard response.status == .ok else {
            throw CLIError("creating the enrollment group: HTTP \(response.status.code)")
        }
    }
}

/// Assignments by device index, filled concurrently.
private final class AssignmentBox: Sendable {
    private let values: Mutex<[DPSAssignment?]>
    init(count: Int) { values = Mutex(Array(repeating: nil, count: count)) }
    func set(_ index: Int, _ value: DPSAssignment) { values.withLock { $0[index] = value } }
    func get(_ index: Int) -> DPSAssignment? { values.withLock { $0[index] } }
}

/// The hub connections held open.
private final class ConnectionBox: Sendable {
    private let connections = Mutex<[IoTHubDeviceConnection]>([])
    func add(_ connection: IoTHubDeviceConnection) { connections.withLock { $0.append(connection) } }
    var all: [IoTHubDeviceConnection] { connections.withLock { $0 } }
    var count: Int { connections.withLock { $0.count } }
}
