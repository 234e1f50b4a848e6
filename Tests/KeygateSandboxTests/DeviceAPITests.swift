import Foundation
import KeygateAzure
import KeygateSandbox
import KeygateTestSupport
import Testing

/// The DPS device API over HTTPS with curl and a client certificate, an enrollment group (CA),
/// the hub's HTTPS telemetry and registry, all outside Microsoft's SDKs.
@Suite struct DeviceAPITests {
    @Test(.tags(.outsideTool), .fullRunOnly) func curlRegistersAGroupDeviceAndSendsTelemetryWithItsCertificate() async throws {
        guard ExternalTool.available("curl"), ExternalTool.available("openssl") else { return }
        let folder = try TemporaryDirectory("dps-curl")
        let sandbox = try await TestSandbox.start(in: folder)
        defer { Task { await sandbox.stop() } }
        let connection = sandbox.connection
        let openssl = try ExternalTool.openssl
        let curl = try ExternalTool.require("curl")

        // A group CA and a device certificate it signs.
        for arguments in [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("ca.key"), "-out", folder.file("ca.pem"), "-days", "30", "-subj", "/CN=Group CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            ],
            [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("dev.key"), "-out", folder.file("dev.csr"), "-subj", "/CN=curl-dev-1",
            ],
            [
                "x509", "-req", "-in", folder.file("dev.csr"), "-CA", folder.file("ca.pem"), "-CAkey",
                folder.file("ca.key"), "-CAcreateserial", "-out", folder.file("dev.pem"), "-days", "30",
            ],
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                folder.file("stranger.key"), "-out", folder.file("stranger.pem"), "-days", "30", "-subj",
                "/CN=stranger",
            ],
        ] {
            let made = try await openssl.run(arguments)
            #expect(made.status == 0, "\(made.combined)")
        }

        let dps = try SharedAccessSignatureToken.ConnectionString(connection.dps.serviceConnectionString)
        let base = connection.baseURL
        func call(_ method: String, _ url: String, body: String? = nil, sas: String? = nil, cert: String? = nil)
            async throws -> (status: Int, json: [String: Any])
        {
            var arguments = ["-sS", "-X", method, "--cacert", connection.caCertificate, "-w", "\n%{http_code}"]
            if let sas { arguments += ["-H", "Authorization: \(sas)"] }
            if let cert { arguments += ["--cert", folder.file("\(cert).pem"), "--key", folder.file("\(cert).key")] }
            if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
            let output = try await curl.run(arguments + [url])
            let lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let status = Int(lines.last ?? "") ?? 0
            let text = lines.dropLast().joined(separator: "\n")
            let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            return (status, json)
        }

        let caPEM = try folder.read("ca.pem")
        let group = try JSONSerialization.data(withJSONObject: [
            "enrollmentGroupId": "curl-group",
            "attestation": ["type": "x509", "x509": ["signingCertificates": ["primary": ["certificate": caPEM]]]],
        ])
        let created = try await call(
            "PUT", base + "/enrollmentGroups/curl-group?api-version=2021-10-01",
            body: String(decoding: group, as: UTF8.self),
            sas: try dps.token())
        #expect(created.status == 200 && created.json["etag"] != nil, "\(created)")

        let scope = connection.dps.idScope
        let registered = try await call(
            "PUT", base + "/\(scope)/registrations/curl-dev-1/register?api-version=2021-06-01",
            body: #"{"registrationId":"curl-dev-1"}"#, cert: "dev")
        #expect(registered.status == 202 && registered.json["status"] as? String == "assigning", "\(registered)")
        let operation = try #require(registered.json["operationId"] as? String)
        let polled = try await call(
            "GET", base + "/\(scope)/registrations/curl-dev-1/operations/\(operation)?api-version=2021-06-01",
            cert: "dev")
        #expect(polled.status == 200 && polled.json["status"] as? String == "assigned", "\(polled)")
        let state = polled.json["registrationState"] as? [String: Any]
        #expect(
            state?["assignedHub"] as? String == connection.hub.hostName && state?["deviceId"] as? String == "curl-dev-1"
        )

        // Without a certificate, or with one nobody enrolled: 401 and DPS's error body.
        let anonymous = try await call(
            "PUT", base + "/\(scope)/registrations/curl-dev-1/register?api-version=2021-06-01", body: "{}")
        #expect(anonymous.status == 401 && anonymous.json["errorCode"] as? Int == 401_002, "\(anonymous)")
        let stranger = try await call(
            "PUT", base + "/\(scope)/registrations/stranger/register?api-version=2021-06-01", body: "{}",
            cert: "stranger")
        #expect(stranger.status == 401)
        let someoneElse = try await call(
            "PUT", base + "/\(scope)/registrations/curl-dev-1/register?api-version=2021-06-01", body: "{}",
            cert: "stranger")
        #expect(someoneElse.status == 401, "the CN must be the registration ID")

        // As in Azure, DPS gave the group's device a self-signed identity with its own certificate's
        // thumbprint; HTTPS telemetry with the certificate is accepted.
        let hubAccess = try SharedAccessSignatureToken.ConnectionString(connection.hub.registryConnectionString)
        let identity = try await call(
            "GET", base + "/devices/curl-dev-1?api-version=2021-04-12", sas: try hubAccess.token())
        let authentication = identity.json["authentication"] as? [String: Any]
        #expect(authentication?["type"] as? String == "selfSigned")
        #expect(((authentication?["x509Thumbprint"] as? [String: Any])?["primaryThumbprint"] as? String)?.count == 40)
        for _ in 0..<3 {
            let sent = try await call(
                "POST", base + "/devices/curl-dev-1/messages/events?api-version=2020-03-13", body: #"{"t":21.5}"#,
                cert: "dev")
            #expect(sent.status == 204, "\(sent)")
        }
        let refused = try await call(
            "POST", base + "/devices/curl-dev-1/messages/events?api-version=2020-03-13", body: "{}", cert: "stranger")
        #expect(refused.status == 401)
        let inventory = try await SandboxControlClient(connection: connection).inventory()
        #expect(inventory.devices.first { $0.deviceId == "curl-dev-1" }?.telemetryMessages == 3)
        #expect(inventory.registrations.first?.enrollmentGroupId == "curl-group")

        // Service API rules: ETag, bulk limit, 404, the api-version.
        let etag = try #require(created.json["etag"] as? String)
        let stale = try await call(
            "DELETE", base + "/enrollmentGroups/curl-group?api-version=2021-10-01", sas: try dps.token())
        _ = stale
        let recreated = try await call(
            "PUT", base + "/enrollmentGroups/curl-group?api-version=2021-10-01",
            body: String(decoding: group, as: UTF8.self),
            sas: try dps.token())
        #expect(recreated.status == 200)
        var mismatch = [
            "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", "--cacert", connection.caCertificate,
        ]
        mismatch += ["-H", "Authorization: \(try dps.token())", "-H", "If-Match: \(etag)"]
        let mismatched = try await curl.run(mismatch + [base + "/enrollmentGroups/curl-group?api-version=2021-10-01"])
        #expect(mismatched.stdout == "412", "an old ETag: \(mismatched.combined)")
        let noVersion = try await call("GET", base + "/enrollmentGroups/curl-group", sas: try dps.token())
        #expect(noVersion.status == 400)
        let eleven = (0..<11).map { ["registrationId": "bulk-\($0)", "attestation": ["type": "symmetricKey"]] }
        let bulk = try JSONSerialization.data(withJSONObject: ["enrollments": eleven, "mode": "create"])
        let tooMany = try await call(
            "POST", base + "/enrollments?api-version=2021-10-01", body: String(decoding: bulk, as: UTF8.self),
            sas: try dps.token())
        #expect(tooMany.status == 400)
        let ten = try JSONSerialization.data(withJSONObject: [
            "enrollments": Array(eleven.prefix(10)), "mode": "create",
        ])
        let bulkDone = try await call(
            "POST", base + "/enrollments?api-version=2021-10-01", body: String(decoding: ten, as: UTF8.self),
            sas: try dps.token())
        #expect(bulkDone.status == 200 && bulkDone.json["isSuccessful"] as? Bool == true, "\(bulkDone)")
        let again = try await call(
            "POST", base + "/enrollments?api-version=2021-10-01", body: String(decoding: ten, as: UTF8.self),
            sas: try dps.token())
        #expect(again.json["isSuccessful"] as? Bool == false && (again.json["errors"] as? [Any])?.count == 10)
    }
}
