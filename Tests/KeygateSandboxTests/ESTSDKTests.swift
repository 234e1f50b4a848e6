import Foundation
import KeygateDomain
import KeygateSandbox
import KeygateServer
import KeygateTestSupport
import Testing

extension PythonSDKTests {
    /// The SHA-256 thumbprint of a PEM certificate as DPS shows it (upper-case hex), from openssl.
    static func thumbprint(_ file: String) async throws -> String {
        let printed = try await ExternalTool.openssl.run(["x509", "-in", file, "-noout", "-fingerprint", "-sha256"])
        return String(printed.stdout.split(separator: "=").last ?? "").replacingOccurrences(of: ":", with: "")
            .trimmingCharacters(in: .whitespacesAndNewlines).uppercased()
    }

    /// A device that speaks only EST gets its identity through the same group, connector and outbox as
    /// any other: the DPS enrollment appears, Microsoft's device SDK registers and connects with the
    /// EST certificate, and a `simplereenroll` moves the enrollment's primary to the new certificate
    /// with the previous one as secondary.
    @Test func anESTDeviceIsEnrolledInDPSRegistersConnectsAndRenews() async throws {
        guard Self.python != nil, ExternalTool.available("openssl"), ExternalTool.available("curl") else { return }
        let folder = try TemporaryDirectory("est-sdk")
        let sandbox = try await TestSandbox.start(in: folder, mqttPort: 8883)
        defer { Task { await sandbox.stop() } }
        let kg = try await TestKeygate.make()
        let azure = sandbox.connection
        var connector = ConnectorRequest(name: "sandbox-dps", type: "dps")
        connector.globalEndpoint = azure.dps.deviceEndpoint
        connector.caCertificate = azure.caCertificate
        connector.connectionString = azure.dps.serviceConnectionString
        connector.idScope = azure.dps.idScope
        connector.hubConnectionString = azure.hub.registryConnectionString
        _ = try await kg.server.services.connectors.add(connector, actor: "admin:test")
        let openssl = try ExternalTool.openssl
        for arguments in [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("factory.key"), "-out", folder.file("factory.pem"), "-days", "30", "-subj", "/CN=Factory CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            ],
            [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("boot.key"), "-out", folder.file("boot.csr"), "-subj", "/CN=est-gw-1",
            ],
            [
                "x509", "-req", "-in", folder.file("boot.csr"), "-CA", folder.file("factory.pem"), "-CAkey",
                folder.file("factory.key"), "-CAcreateserial", "-days", "30", "-out", folder.file("boot.pem"),
            ],
        ] {
            let made = try await openssl.run(arguments)
            #expect(made.status == 0, "\(made.combined)")
        }
        var group = GroupRequest(name: "gateways")
        group.attestationMethods = ["x509"]
        group.bootstrapCAs = [try folder.read("factory.pem")]
        group.connector = "sandbox-dps"
        _ = try await kg.server.services.fleet.createGroup(group, actor: "admin:test")
        _ = try await kg.server.services.fleet.importAllowlist(
            .init(entries: [.init(deviceId: "est-gw-1", group: "gateways")]), actor: "admin:test")
        let running = try await kg.start()
        defer { Task { await running.stop() } }
        let est = ESTClient(baseURL: running.httpsURL, caFile: kg.rootPath, folder: folder)
        let control = SandboxControlClient(connection: azure)
        func enrollment() async throws -> SandboxInventory.Enrollment? {
            try await control.inventory().enrollments.first { $0.id == "est-gw-1" }
        }
        func waitFor(_ condition: (SandboxInventory.Enrollment?) -> Bool) async throws -> SandboxInventory.Enrollment? {
            for _ in 0..<150 {
                let current = try await enrollment()
                if condition(current) { return current }
                try await Task.sleep(for: .milliseconds(200))
            }
            return try await enrollment()
        }

        // simpleenroll with the bootstrap certificate; the connector puts the certificate into DPS.
        let (key, csr) = try await est.makeCSR("gw1")
        let enrolled = try await est.request(
            "POST", "/.well-known/est/gateways/simpleenroll", body: csr, certificate: folder.file("boot.pem"),
            key: folder.file("boot.key"), name: "enroll")
        #expect(enrolled.status == 200, "\(enrolled.body)")
        let first = try await est.certificates(of: enrolled, name: "gw1")
        let firstThumbprint = try await Self.thumbprint(first.file)
        let created = try await waitFor { $0?.primaryThumbprint == firstThumbprint }
        #expect(created?.primaryThumbprint == firstThumbprint && created?.provisioningStatus == "enabled", "\(String(describing: created))")

        // Microsoft's device SDK registers with that certificate and sends telemetry through the hub.
        let run = try await ExternalTool(path: packageRoot + "/.venv/bin/python3").run(
            [packageRoot + "/Tests/python/est_device.py"],
            environment: [
                "SANDBOX_CONNECTION": folder.file("sandbox/connection.json"), "DEVICE_ID": "est-gw-1",
                "DEVICE_CERT": first.file, "DEVICE_KEY": key, "MESSAGES": "3",
            ], timeout: 120)
        #expect(run.status == 0 && run.stdout.contains("\"ok\": true"), "\(run.combined)")
        let hubDevice = try await control.inventory().devices.first { $0.deviceId == "est-gw-1" }
        #expect(hubDevice?.telemetryMessages == 3, "\(String(describing: hubDevice))")

        // simplereenroll with the EST certificate: new primary, the previous one secondary.
        let (_, renewal) = try await est.makeCSR("gw2")
        let renewed = try await est.request(
            "POST", "/.well-known/est/gateways/simplereenroll", body: renewal, certificate: first.file, key: key,
            name: "renew")
        #expect(renewed.status == 200, "\(renewed.body)")
        let second = try await est.certificates(of: renewed, name: "gw2")
        let secondThumbprint = try await Self.thumbprint(second.file)
        let switched = try await waitFor { $0?.primaryThumbprint == secondThumbprint }
        #expect(
            switched?.primaryThumbprint == secondThumbprint && switched?.secondaryThumbprint == firstThumbprint,
            "\(String(describing: switched))")
    }
}
