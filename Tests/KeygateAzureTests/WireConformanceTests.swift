import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import HummingbirdTLS
import KeygateAzure
import KeygatePKI
import KeygateTestSupport
import NIOCore
import NIOSSL
import Synchronization
import Testing
import X509

/// Keygate's Azure clients against a recorder, checked against what docs/azure.md says real Azure
/// expects: paths, api-version, headers, the SAS form and signature, bodies. (The sandbox is lenient
/// where Azure is; this test is not.)
@Suite struct WireConformanceTests {
    struct Recorded: Sendable {
        var method: String
        var path: String
        var query: [String: String]
        var headers: [String: String]
        var body: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] }
        var bytes: [UInt8]
    }

    final class Recorder: Sendable {
        private let recorded = Mutex<[Recorded]>([])
        /// What was PUT, by path, as JSON bytes.
        private let stored = Mutex<[String: [UInt8]]>([:])
        func record(_ request: Recorded) { recorded.withLock { $0.append(request) } }
        var all: [Recorded] { recorded.withLock { $0 } }
        func store(_ path: String, _ body: [String: Any]?) {
            let bytes = body.flatMap { try? JSONSerialization.data(withJSONObject: $0) }.map { [UInt8]($0) }
            stored.withLock { $0[path] = bytes }
        }
        func stored(_ path: String) -> [String: Any]? {
            stored.withLock { $0[path] }.flatMap { (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any] }
        }
    }

    /// An HTTPS server that records every request and keeps what was PUT (with an etag).
    static func start(_ recorder: Recorder, in folder: TemporaryDirectory) async throws -> (
        Task<Void, any Error>, Int, String
    ) {
        let pki = try await TestPKI.make()
        let key = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("recorder") }, privateKey: .init(key),
            attributes: .init())
        let certificate = try await pki.issuing.issue(
            csr: try CSRPolicy().check(try csr.derBytes), profile: .server,
            identity: .init(commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"]), revocation: nil, validity: 3600)
        let files = try pki.writeFiles(into: folder)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: try certificate.derBytes, format: .der))]
                + (try NIOSSLCertificate.fromPEMFile(files.issuing)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        let router = Router()
        router.on("**", method: .get) { request, _ in try await answer(request, recorder) }
        router.on("**", method: .put) { request, _ in try await answer(request, recorder) }
        router.on("**", method: .patch) { request, _ in try await answer(request, recorder) }
        router.on("**", method: .delete) { request, _ in try await answer(request, recorder) }
        router.on("**", method: .post) { request, _ in try await answer(request, recorder) }
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) })
        let task = Task { try await app.runService() }
        var iterator = stream.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ServerDidNotStart(log: "recorder") }
        return (task, port, files.root)
    }

    static func answer(_ request: Request, _ recorder: Recorder) async throws -> Response {
        let bytes = Array((try await request.body.collect(upTo: 1 << 20)).readableBytesView)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
        let recorded = Recorded(
            method: request.method.rawValue, path: request.uri.path, query: query, headers: headers, bytes: bytes)
        recorder.record(recorded)
        let path = request.uri.path
        func json(_ object: Any, _ status: HTTPResponse.Status = .ok) throws -> Response {
            Response(
                status: status, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))))
        }
        switch request.method {
        case .get:
            if path.hasSuffix("/credentials") { return try json(["idScope": "0ne00ABCDEF"]) }
            guard var body = recorder.stored(path) else { return try json(["errorCode": 404_001], .notFound) }
            // DPS describes enrolled certificates by `info` only: it never returns the certificate.
            if path.hasPrefix("/enrollments/"), var attestation = body["attestation"] as? [String: Any],
                var x509 = attestation["x509"] as? [String: Any],
                var certificates = x509["clientCertificates"] as? [String: Any]
            {
                for (slot, value) in certificates {
                    guard var entry = value as? [String: Any] else { continue }
                    entry["certificate"] = nil
                    entry["info"] = ["sha1Thumbprint": "AA"]
                    certificates[slot] = entry
                }
                x509["clientCertificates"] = certificates
                attestation["x509"] = x509
                body["attestation"] = attestation
            }
            return try json(body)
        case .put, .patch:
            var body = recorded.body ?? [:]
            body["etag"] = "\"etag-\(recorder.all.count)\""
            recorder.store(path, body)
            return try json(body)
        case .delete:
            return Response(status: .noContent)
        default:
            return try json([] as [Any])
        }
    }

    /// Checks a SAS header the way DPS and IoT Hub do (docs/azure.md).
    static func checkSAS(_ header: String?, host: String, keyName: String, key: String) {
        guard let header, header.hasPrefix("SharedAccessSignature ") else {
            Issue.record("no SharedAccessSignature: \(header ?? "nil")")
            return
        }
        var fields: [String: String] = [:]
        for pair in header.dropFirst("SharedAccessSignature ".count).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            fields[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
        }
        #expect(Set(fields.keys) == ["sr", "sig", "se", "skn"])
        #expect(fields["skn"] == keyName)
        #expect(fields["sr"]?.removingPercentEncoding == host.lowercased(), "sr is the URL-encoded, lower-cased host")
        #expect(fields["sr"]?.contains(":") == false, "sr is URL-encoded")
        let se = fields["se"] ?? ""
        #expect((Double(se) ?? 0) > Date().timeIntervalSince1970, "se is in the future, in seconds")
        #expect((Double(se) ?? 0) < Date().timeIntervalSince1970 + 86_400 * 2, "se is Unix seconds, not milliseconds")
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array(((fields["sr"] ?? "") + "\n" + se).utf8), using: SymmetricKey(data: Data(base64Encoded: key)!))
        #expect(fields["sig"]?.removingPercentEncoding == Data(mac).base64EncodedString(), "the signature matches")
    }

    @Test func dpsIoTHubAndIoTCentralRequestsAreWhatAzureExpects() async throws {
        let folder = try TemporaryDirectory("wire")
        let recorder = Recorder()
        let (task, port, rootFile) = try await Self.start(recorder, in: folder)
        defer { task.cancel() }
        let http = AzureHTTPClients.client(trusting: rootFile)
        let host = "127.0.0.1:\(port)"
        let key = Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).base64EncodedString()
        let pem = try await TestPKI.make().root.certificate.pemString

        // DPS: create, then update (the second PUT carries If-Match with the ETag it read), disable, delete.
        let dps = try DPSServiceClient(
            connectionString: "HostName=\(host);SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=\(key)",
            http: http)
        try await dps.put(.init(registrationID: "dev-1", primaryCertificate: pem))
        try await dps.put(.init(registrationID: "dev-1", primaryCertificate: pem, secondaryCertificate: pem))
        try await dps.setEnabled(
            .init(registrationID: "dev-1", primaryCertificate: pem, secondaryCertificate: pem, enabled: false))
        try await dps.delete("dev-1")
        let dpsCalls = recorder.all.filter { $0.path.hasPrefix("/enrollments") }
        #expect(dpsCalls.map(\.method) == ["GET", "PUT", "GET", "PUT", "GET", "PUT", "DELETE"])
        for call in dpsCalls {
            #expect(call.path == "/enrollments/dev-1")
            #expect(["2019-03-31", "2021-06-01", "2021-10-01"].contains(call.query["api-version"] ?? ""))
            Self.checkSAS(call.headers["authorization"], host: host, keyName: "provisioningserviceowner", key: key)
        }
        let create = try #require(dpsCalls[1].body)
        #expect(dpsCalls[1].headers["if-match"] == nil, "a create has no If-Match")
        #expect(dpsCalls[1].headers["content-type"]?.hasPrefix("application/json") == true)
        #expect(create["registrationId"] as? String == "dev-1")
        #expect(create["provisioningStatus"] as? String == "enabled")
        let attestation = try #require(create["attestation"] as? [String: Any])
        #expect(attestation["type"] as? String == "x509")
        let x509 = attestation["x509"] as? [String: Any]
        let primary = (x509?["clientCertificates"] as? [String: Any])?["primary"] as? [String: Any]
        #expect((primary?["certificate"] as? String)?.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
        #expect(dpsCalls[3].headers["if-match"] == "\"etag-2\"", "an update sends the ETag it read")
        let renewed =
            (((dpsCalls[3].body?["attestation"] as? [String: Any])?["x509"] as? [String: Any])?[
                "clientCertificates"] as? [String: Any])
        #expect(renewed?["secondary"] != nil, "the previous certificate stays as secondary")
        #expect(dpsCalls[5].body?["provisioningStatus"] as? String == "disabled")
        // A disable is a whole enrollment: the certificates themselves, not the `info` the GET answered.
        let disabled =
            (((dpsCalls[5].body?["attestation"] as? [String: Any])?["x509"] as? [String: Any])?[
                "clientCertificates"] as? [String: Any])
        for slot in ["primary", "secondary"] {
            let entry = disabled?[slot] as? [String: Any]
            #expect((entry?["certificate"] as? String)?.hasPrefix("-----BEGIN CERTIFICATE-----") == true, "\(slot)")
            #expect(entry?["info"] == nil, "no read-only info is sent back (\(slot))")
        }
        #expect(dpsCalls[5].headers["if-match"] != nil, "the disable sends the ETag it read")

        // IoT Hub registry: read, then PUT the identity with If-Match and the new status.
        let hub = try IoTHubRegistryClient(
            connectionString: "HostName=\(host);SharedAccessKeyName=iothubowner;SharedAccessKey=\(key)", http: http)
        recorder.store("/devices/dev-1", ["deviceId": "dev-1", "status": "enabled", "etag": "AAAA"])
        try await hub.setStatus("dev-1", enabled: false)
        let hubCalls = recorder.all.filter { $0.path.hasPrefix("/devices") }
        #expect(hubCalls.map(\.method) == ["GET", "PUT"])
        for call in hubCalls {
            #expect(call.query["api-version"] == "2021-04-12")
            Self.checkSAS(call.headers["authorization"], host: host, keyName: "iothubowner", key: key)
        }
        #expect(hubCalls[1].headers["if-match"] == "\"AAAA\"")
        #expect(hubCalls[1].body?["status"] as? String == "disabled")

        // IoT Central: device, attestation, enabled:false, credentials; the API token as it was given.
        let token =
            "SharedAccessSignature sr=app&sig=abc&skn=keygate&se=\(Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000)"
        let central = try IoTCentralClient(appURL: "https://\(host)", apiToken: token, http: http)
        try await central.putDevice("dev-2", displayName: "dev-2", enabled: true, certificate: pem)
        try await central.setEnabled("dev-2", false)
        #expect(try await central.idScope(deviceID: "dev-2") == "0ne00ABCDEF")
        let centralCalls = recorder.all.filter { $0.path.hasPrefix("/api/") }
        #expect(
            centralCalls.map { "\($0.method) \($0.path)" } == [
                "PUT /api/devices/dev-2", "PUT /api/devices/dev-2/attestation", "PATCH /api/devices/dev-2",
                "GET /api/devices/dev-2/credentials",
            ])
        for call in centralCalls {
            #expect(call.query["api-version"] == "2022-07-31")
            #expect(call.headers["authorization"] == token)
        }
        #expect(
            centralCalls[0].body?["enabled"] as? Bool == true && centralCalls[0].body?["simulated"] as? Bool == false)
        #expect((centralCalls[1].body?["type"] as? String) == "x509")
        #expect(centralCalls[2].body?.count == 1 && centralCalls[2].body?["enabled"] as? Bool == false)
    }
}
