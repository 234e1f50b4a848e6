import Foundation
import KeygateSandbox
import KeygateTestSupport
import Testing

/// Microsoft's own Python SDKs (azure-iot-device 2.14.0, azure-iot-hub 2.7.0,
/// azure-iothub-provisioningserviceclient 1.2.0, installed in .venv by scripts/test-tools.sh) against
/// the sandbox. They hard-code MQTT port 8883, so these tests take turns.
@Suite(.serialized, .tags(.outsideTool), .fullRunOnly) struct PythonSDKTests {
    /// A self-signed EC P-256 device certificate with CN = `name`.
    static func deviceCertificate(_ name: String, in folder: TemporaryDirectory) async throws -> (
        cert: String, key: String
    ) {
        let openssl = try ExternalTool.openssl
        let key = folder.file("\(name).key.pem")
        let cert = folder.file("\(name).cert.pem")
        let made = try await openssl.run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
            cert, "-days", "30", "-subj", "/CN=\(name)",
        ])
        #expect(made.status == 0, "\(made.combined)")
        return (cert, key)
    }

    static var python: ExternalTool? {
        guard let python = ExternalTool.find("python3"),
            FileManager.default.fileExists(atPath: packageRoot + "/.venv/bin/python3")
        else {
            if ExternalTool.toolsRequired {
                Issue.record("the .venv with Microsoft's SDKs is required; run scripts/test-tools.sh")
            }
            return nil
        }
        return python
    }

    @Test func microsoftsSDKsEnrollRegisterConnectSendAndAreCutOff() async throws {
        guard Self.python != nil, ExternalTool.available("openssl") else { return }
        let folder = try TemporaryDirectory("python-sdk")
        let sandbox = try await TestSandbox.start(in: folder, mqttPort: 8883)
        defer { Task { await sandbox.stop() } }
        let device = try await Self.deviceCertificate("sensor-py-1", in: folder)
        let second = try await Self.deviceCertificate("sensor-py-2", in: folder)
        let run = try await ExternalTool(path: packageRoot + "/.venv/bin/python3").run(
            [packageRoot + "/Tests/python/sandbox_sdk_flow.py"],
            environment: [
                "SANDBOX_CONNECTION": folder.file("sandbox/connection.json"),
                "REQUESTS_CA_BUNDLE": sandbox.connection.caCertificate,
                "DEVICE_ID": "sensor-py-1", "DEVICE_CERT": device.cert, "DEVICE_KEY": device.key,
                "SECOND_ID": "sensor-py-2", "SECOND_CERT": second.cert, "SECOND_KEY": second.key,
            ], timeout: 180)
        #expect(run.status == 0 && run.stdout.contains("\"ok\": true"), "\(run.combined)")

        // What the sandbox saw, through `inspect`'s view.
        let inventory = try await SandboxControlClient(connection: sandbox.connection).inventory()
        let registration = inventory.registrations.first { $0.registrationId == "sensor-py-1" }
        #expect(registration?.status == "assigned" && registration?.deviceId == "sensor-py-1")
        #expect(inventory.registrations.first { $0.registrationId == "sensor-py-2" }?.status == "disabled")
        let hubDevice = inventory.devices.first { $0.deviceId == "sensor-py-1" }
        #expect(hubDevice?.telemetryMessages == 10, "\(String(describing: hubDevice))")
        #expect(hubDevice?.status == "disabled" && hubDevice?.connected == false)
        #expect(!inventory.devices.contains { $0.deviceId == "sensor-py-2" }, "a disabled enrollment makes no device")
    }

    @Test func garbageTruncatedOversizedAndForbiddenPacketsCloseOnlyThatConnection() async throws {
        guard Self.python != nil, ExternalTool.available("openssl") else { return }
        let folder = try TemporaryDirectory("python-mqtt-abuse")
        let sandbox = try await TestSandbox.start(in: folder, mqttPort: 8883)
        defer { Task { await sandbox.stop() } }
        let good = try await Self.deviceCertificate("steady-1", in: folder)
        let bad = try await Self.deviceCertificate("rogue-1", in: folder)
        let run = try await ExternalTool(path: packageRoot + "/.venv/bin/python3").run(
            [packageRoot + "/Tests/python/sandbox_mqtt_abuse.py"],
            environment: [
                "SANDBOX_CONNECTION": folder.file("sandbox/connection.json"),
                "REQUESTS_CA_BUNDLE": sandbox.connection.caCertificate,
                "DEVICE_ID": "steady-1", "DEVICE_CERT": good.cert, "DEVICE_KEY": good.key,
                "BAD_ID": "rogue-1", "BAD_CERT": bad.cert, "BAD_KEY": bad.key,
            ], timeout: 180)
        #expect(run.status == 0 && run.stdout.contains("\"ok\": true"), "\(run.combined)")
        let inventory = try await SandboxControlClient(connection: sandbox.connection).inventory()
        #expect(inventory.devices.first { $0.deviceId == "steady-1" }?.telemetryMessages == 6)
        #expect(inventory.devices.first { $0.deviceId == "rogue-1" }?.telemetryMessages == 0)
    }

    @Test func iotCentralDevicesAttestProvisionThroughDPSAndAreBlockedWhenDisabled() async throws {
        guard Self.python != nil, ExternalTool.available("openssl") else { return }
        let folder = try TemporaryDirectory("python-central")
        let sandbox = try await TestSandbox.start(in: folder, mqttPort: 8883)
        defer { Task { await sandbox.stop() } }
        let device = try await Self.deviceCertificate("boiler-7", in: folder)
        let openssl = try ExternalTool.openssl
        for arguments in [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("group-ca.key"), "-out", folder.file("group-ca.pem"), "-days", "30", "-subj",
                "/CN=Factory CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            ],
            [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("line-3.key"), "-out", folder.file("line-3.csr"), "-subj", "/CN=line-3",
            ],
            [
                "x509", "-req", "-in", folder.file("line-3.csr"), "-CA", folder.file("group-ca.pem"), "-CAkey",
                folder.file("group-ca.key"), "-CAcreateserial", "-out", folder.file("line-3.pem"), "-days", "30",
            ],
        ] {
            let made = try await openssl.run(arguments)
            #expect(made.status == 0, "\(made.combined)")
        }
        let run = try await ExternalTool(path: packageRoot + "/.venv/bin/python3").run(
            [packageRoot + "/Tests/python/sandbox_central.py"],
            environment: [
                "SANDBOX_CONNECTION": folder.file("sandbox/connection.json"),
                "REQUESTS_CA_BUNDLE": sandbox.connection.caCertificate, "WORK": folder.path,
                "DEVICE_ID": "boiler-7", "DEVICE_CERT": device.cert, "DEVICE_KEY": device.key,
                "GROUP_CA_CERT": folder.file("group-ca.pem"), "GROUP_CA_KEY": folder.file("group-ca.key"),
                "GROUP_DEVICE_ID": "line-3", "GROUP_DEVICE_CERT": folder.file("line-3.pem"),
                "GROUP_DEVICE_KEY": folder.file("line-3.key"),
            ], timeout: 180)
        #expect(run.status == 0 && run.stdout.contains("\"ok\": true"), "\(run.combined)")
        let inventory = try await SandboxControlClient(connection: sandbox.connection).inventory()
        #expect(inventory.devices.first { $0.deviceId == "boiler-7" }?.status == "disabled")
        #expect(inventory.registrations.first { $0.registrationId == "line-3" }?.enrollmentGroupId == "factory")
    }
}
