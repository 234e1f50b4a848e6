import AsyncHTTPClient
import Crypto
import Foundation
import KeygateAgent
import KeygateAzure
import KeygateMQTT
import KeygatePKI
import KeygateSandbox
import KeygateTestSupport
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
import X509

/// Keygate's own MQTT client (the agent's) against the sandbox: DPS registration, hub telemetry,
/// disabling cuts the connection and refuses the next, an injected outage refuses with CONNACK 3.
@Suite struct MQTTDeviceTests {
    @Test func theAgentsMQTTClientRegistersConnectsAndIsCutOffWhenDisabled() async throws {
        let folder = try TemporaryDirectory("mqtt-device")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let connection = sandbox.connection
        let port = try #require(connection.dps.mqttPort)

        // A device certificate and its individual enrollment.
        let ca = try await CertificateAuthority.makeRoot(
            name: "Device Maker", organization: "Tests", signer: try SoftwareSigner.generate(.p256))
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("mqtt-dev-1") }, privateKey: .init(key),
            attributes: .init())
        let certificate = try await ca.issue(
            csr: try CSRPolicy().check(try csr.derBytes), profile: .device, identity: .init(commonName: "mqtt-dev-1"),
            revocation: nil, validity: 3600)
        let identity = AzureDeviceIdentity(
            certificateChain: [try NIOSSLCertificate(bytes: try certificate.derBytes, format: .der)],
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem),
            trustRoots: try NIOSSLCertificate.fromPEMFile(connection.caCertificate))
        let http = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                tlsConfiguration: {
                    var tls = TLSConfiguration.makeClientConfiguration()
                    tls.trustRoots = .file(connection.caCertificate)
                    return tls
                }()))
        defer { _ = http.shutdown() }
        func call(_ method: HTTPMethod, _ path: String, _ body: [String: Any]?, access: String) async throws -> [String:
            Any]
        {
            let credentials = try SharedAccessSignatureToken.ConnectionString(access)
            var request = HTTPClientRequest(url: "https://\(credentials.hostName)\(path)")
            request.method = method
            request.headers.add(name: "Authorization", value: try credentials.token())
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            }
            let response = try await http.execute(request, timeout: .seconds(10))
            let data = try await response.body.collect(upTo: 1 << 20)
            return (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView))) as? [String: Any] ?? [:]
        }
        _ = try await call(
            .PUT, "/enrollments/mqtt-dev-1?api-version=2021-10-01",
            [
                "registrationId": "mqtt-dev-1",
                "attestation": [
                    "type": "x509",
                    "x509": ["clientCertificates": ["primary": ["certificate": try certificate.pemString]]],
                ],
            ], access: connection.dps.serviceConnectionString)

        let assignment = try await DPSMQTTRegistration.register(
            endpoint: connection.dps.deviceEndpoint, port: port, idScope: connection.dps.idScope,
            registrationID: "mqtt-dev-1", identity: identity)
        #expect(assignment == DPSAssignment(assignedHub: connection.hub.hostName, deviceId: "mqtt-dev-1"))

        // One connection per device: a second one closes the first.
        let first = try await IoTHubDeviceConnection.connect(
            hub: assignment.assignedHub, port: port, deviceID: assignment.deviceId, identity: identity)
        let device = try await IoTHubDeviceConnection.connect(
            hub: assignment.assignedHub, port: port, deviceID: assignment.deviceId, identity: identity)
        #expect(await first.client.waitUntilClosed(timeout: .seconds(5)), "the older connection is closed")
        for index in 0..<5 { try await device.send(Array("{\"n\":\(index)}".utf8)) }
        let controls = SandboxControlClient(connection: connection)
        #expect(try await controls.inventory().devices.first?.telemetryMessages == 5)

        // Disabled through the registry: the live connection closes and a new one is refused.
        var identityJSON = try await call(
            .GET, "/devices/mqtt-dev-1?api-version=2021-04-12", nil, access: connection.hub.registryConnectionString)
        identityJSON["status"] = "disabled"
        var request = HTTPClientRequest(
            url:
                "https://\(try SharedAccessSignatureToken.ConnectionString(connection.hub.registryConnectionString).hostName)/devices/mqtt-dev-1?api-version=2021-04-12"
        )
        request.method = .PUT
        request.headers.add(
            name: "Authorization",
            value: try SharedAccessSignatureToken.ConnectionString(connection.hub.registryConnectionString).token())
        request.headers.add(name: "If-Match", value: "*")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: identityJSON)))
        let disabled = try await http.execute(request, timeout: .seconds(10))
        #expect(disabled.status == .ok)
        #expect(await device.client.waitUntilClosed(timeout: .seconds(5)), "disabling cuts the live connection")
        await #expect(throws: MQTTClient.Failure.refused(returnCode: 5)) {
            _ = try await IoTHubDeviceConnection.connect(
                hub: assignment.assignedHub, port: port, deviceID: assignment.deviceId, identity: identity)
        }

        // DPS "down": CONNACK 3 (server unavailable); "up" again: registration works.
        try await controls.set(.init(down: true), surface: .dpsDevice)
        await #expect(throws: MQTTClient.Failure.refused(returnCode: 3)) {
            _ = try await DPSMQTTRegistration.register(
                endpoint: connection.dps.deviceEndpoint, port: port, idScope: connection.dps.idScope,
                registrationID: "mqtt-dev-1", identity: identity)
        }
        try await controls.set(.init(down: false), surface: .dpsDevice)
        let again = try await DPSMQTTRegistration.register(
            endpoint: connection.dps.deviceEndpoint, port: port, idScope: connection.dps.idScope,
            registrationID: "mqtt-dev-1", identity: identity)
        #expect(again.deviceId == "mqtt-dev-1")
    }

    @Test func enrollmentsAndHubDevicesSurviveARestart() async throws {
        let folder = try TemporaryDirectory("sandbox-restart")
        let sandbox = try await TestSandbox.start(in: folder)
        let before = sandbox.connection
        let access = try SharedAccessSignatureToken.ConnectionString(before.dps.serviceConnectionString)
        let http = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                tlsConfiguration: {
                    var tls = TLSConfiguration.makeClientConfiguration()
                    tls.trustRoots = .file(before.caCertificate)
                    return tls
                }()))
        defer { _ = http.shutdown() }
        func call(
            _ method: HTTPMethod, host: String, key: SharedAccessSignatureToken.ConnectionString, body: [String: Any]?
        )
            async throws -> Int
        {
            var request = HTTPClientRequest(url: "https://\(host)/enrollments/kept-1?api-version=2021-10-01")
            request.method = method
            request.headers.add(name: "Authorization", value: try key.token())
            if let body { request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body))) }
            let response = try await http.execute(request, timeout: .seconds(30))  // generous: the full suite loads the machine
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
        let created = try await call(
            .PUT, host: access.hostName, key: access,
            body: ["attestation": ["type": "symmetricKey"], "registrationId": "kept-1"])
        #expect(created == 200)
        await sandbox.stop()

        let restarted = try await TestSandbox.start(in: folder)
        defer { Task { await restarted.stop() } }
        let after = restarted.connection
        #expect(after.dps.idScope == before.dps.idScope)
        #expect(after.keyVault.clientSecret == before.keyVault.clientSecret)
        let again = try SharedAccessSignatureToken.ConnectionString(after.dps.serviceConnectionString)
        #expect(again.key == access.key, "the SAS policies survive")
        #expect(try await call(.GET, host: again.hostName, key: again, body: nil) == 200, "the enrollment survives")
    }
}
