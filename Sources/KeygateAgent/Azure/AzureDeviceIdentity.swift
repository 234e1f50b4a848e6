import AsyncHTTPClient
import Foundation
public import KeygateMQTT
import NIOCore
import NIOHTTP1
public import NIOSSL

/// A device's X.509 identity for Azure: its certificate chain and key, and the CA that signs the
/// servers' TLS certificates (`nil`: the system's roots).
public struct AzureDeviceIdentity: Sendable {
    /// The device certificate first, then its issuing CA.
    public var certificateChain: [NIOSSLCertificate]
    /// The certificate's private key.
    public var privateKey: NIOSSLPrivateKey
    /// The CA that signs the servers' TLS certificates; `nil`: the system's roots.
    public var trustRoots: [NIOSSLCertificate]?

    /// Creates an identity.
    public init(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey, trustRoots: [NIOSSLCertificate]?) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.trustRoots = trustRoots
    }

    /// TLS 1.2+ with the client certificate.
    public var tls: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateChain = certificateChain.map { .certificate($0) }
        tls.privateKey = .privateKey(privateKey)
        if let trustRoots { tls.trustRoots = .certificates(trustRoots) }
        return tls
    }
}

/// What DPS answered: where the device goes and under which ID.
public struct DPSAssignment: Sendable, Hashable, Codable {
    /// The IoT Hub host the device was assigned to.
    public var assignedHub: String
    /// The device's ID in that hub.
    public var deviceId: String

    /// Creates an assignment.
    public init(assignedHub: String, deviceId: String) {
        self.assignedHub = assignedHub
        self.deviceId = deviceId
    }

    /// The assignment in DPS's final operation status (the same JSON over HTTPS and MQTT); anything
    /// but `assigned` is a `DPSRegistrationFailed` with DPS's message. `status` names the answer when
    /// it carries no status of its own.
    init(operation body: [String: Any], status: String) throws {
        let outcome = body["status"] as? String ?? status
        guard outcome == "assigned", let state = body["registrationState"] as? [String: Any],
            let hub = state["assignedHub"] as? String, let deviceID = state["deviceId"] as? String
        else {
            let message =
                (body["registrationState"] as? [String: Any])?["errorMessage"] as? String
                ?? body["message"] as? String ?? "no assignment"
            throw DPSRegistrationFailed(status: outcome, message: message)
        }
        self.init(assignedHub: hub, deviceId: deviceID)
    }
}

/// Why DPS did not assign the device.
public struct DPSRegistrationFailed: Error, Sendable, CustomStringConvertible {
    /// DPS's status (such as `failed`, `disabled`), or the HTTP or MQTT status when DPS gave none.
    public var status: String
    /// DPS's error message.
    public var message: String
    /// A sentence for logs.
    public var description: String { "DPS registration \(status): \(message)" }
}

/// Registers a device with DPS over MQTT (port 8883 in Azure), as docs/azure.md describes: CONNECT with
/// the registration ID, SUBSCRIBE to the responses, PUBLISH the register request, poll the operation.
public enum DPSMQTTRegistration {
    /// Registers `registrationID` under `idScope` and polls until DPS decides (at most `maximumPolls` times).
    /// Throws ``DPSRegistrationFailed`` unless DPS assigned it, ``MQTTClient/Failure`` on connection errors.
    public static func register(
        endpoint: String, port: Int = 8883, idScope: String, registrationID: String, identity: AzureDeviceIdentity,
        maximumPolls: Int = 30
    ) async throws -> DPSAssignment {
        var configuration = MQTTClient.Configuration(
            host: endpoint, port: port, tls: identity.tls, clientID: registrationID,
            username: "\(idScope)/registrations/\(registrationID)/api-version=2019-03-31&ClientVersion=keygate-agent")
        configuration.cleanSession = false
        let client = try await MQTTClient.connect(configuration)
        defer { Task { await client.close() } }
        var answers = client.messages.makeAsyncIterator()
        _ = try await client.subscribe(["$dps/registrations/res/#"])
        let request = try JSONSerialization.data(withJSONObject: [
            "registrationId": registrationID, "payload": NSNull(),
        ])
        try await client.publish("$dps/registrations/PUT/iotdps-register/?$rid=1", payload: Array(request))
        var (status, body, retryAfter) = try await next(&answers)
        // Throttled (429) or unavailable (503): the registration is published again after Retry-After.
        var retries = 0
        while status == 429 || status == 503, retries < maximumPolls {
            try await Task.sleep(for: .seconds(min(max(retryAfter ?? 2, 1), 60)))
            retries += 1
            try await client.publish(
                "$dps/registrations/PUT/iotdps-register/?$rid=r\(retries)", payload: Array(request))
            (status, body, retryAfter) = try await next(&answers)
        }
        for poll in 0..<maximumPolls {
            guard status == 202 || status == 200, let operation = body["operationId"] as? String else { break }
            if status == 200, body["status"] as? String != "assigning" { break }
            try await Task.sleep(for: .seconds(retryAfter ?? 2))
            try await client.publish(
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=\(poll + 2)&operationId=\(operation)",
                payload: Array(" ".utf8))
            (status, body, retryAfter) = try await next(&answers)
        }
        return try DPSAssignment(operation: body, status: "status \(status)")
    }

    /// The next response: status from `$dps/registrations/res/{status}/?$rid=…&retry-after=…`, JSON body.
    private static func next(_ answers: inout AsyncStream<MQTTPacket.Publish>.AsyncIterator) async throws
        -> (Int, [String: Any], Int?)
    {
        guard let message = await answers.next() else { throw MQTTClient.Failure.closed }
        let parts = message.topic.split(separator: "/")
        let status = parts.count > 3 ? Int(parts[3]) ?? 0 : 0
        let retryAfter = message.topic.split(separator: "&").first { $0.hasPrefix("retry-after=") }
            .flatMap { Int($0.dropFirst("retry-after=".count)) }
        let body = (try? JSONSerialization.jsonObject(with: Data(message.payload))) as? [String: Any] ?? [:]
        return (status, body, retryAfter)
    }
}

/// A device's MQTT connection to its IoT Hub: telemetry at QoS 1 on `devices/{id}/messages/events/`.
public struct IoTHubDeviceConnection: Sendable {
    /// The device's ID in the hub.
    public let deviceID: String
    /// The MQTT connection to the hub.
    public let client: MQTTClient

    /// Connects to `hub` with the device's certificate (MQTT over TLS, persistent session).
    public static func connect(
        hub: String, port: Int = 8883, deviceID: String, identity: AzureDeviceIdentity
    ) async throws -> IoTHubDeviceConnection {
        var configuration = MQTTClient.Configuration(
            host: hub, port: port, tls: identity.tls, clientID: deviceID,
            username: "\(hub)/\(deviceID)/?api-version=2019-10-01&DeviceClientType=keygate-agent")
        configuration.cleanSession = false
        return IoTHubDeviceConnection(deviceID: deviceID, client: try await MQTTClient.connect(configuration))
    }

    /// Sends one telemetry message and waits for the hub's PUBACK.
    public func send(_ payload: [UInt8], properties: String = "") async throws {
        try await client.publish("devices/\(deviceID)/messages/events/\(properties)", payload: payload)
    }

    /// Whether the MQTT connection is still open.
    public var isConnected: Bool { client.isConnected }

    /// Disconnects from the hub.
    public func close() async { await client.close() }
}

/// Registers a device with DPS over HTTPS (docs/azure.md): PUT `register` with the client certificate,
/// then poll the operation, honouring Retry-After.
public enum DPSHTTPSRegistration {
    /// Registers `registrationID` under `idScope` and polls until DPS decides (at most `maximumPolls` times).
    /// Throws ``DPSRegistrationFailed`` unless DPS assigned it, HTTP client errors on connection failures.
    public static func register(
        endpoint: String, port: Int = 443, idScope: String, registrationID: String, identity: AzureDeviceIdentity,
        maximumPolls: Int = 30
    ) async throws -> DPSAssignment {
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: identity.tls))
        defer { _ = http.shutdown() }
        let host = endpoint.contains(":") && !endpoint.hasPrefix("[") ? "[\(endpoint)]" : endpoint
        let base = "https://\(host):\(port)/\(idScope)/registrations/\(registrationID)"
        var request = HTTPClientRequest(url: base + "/register?api-version=2021-06-01")
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        request.body = .bytes(
            ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["registrationId": registrationID])))
        var (status, body, retryAfter) = try await send(request, http: http)
        // Throttled (429) or unavailable (503): DPS says when to try again; the registration is sent again.
        var retries = 0
        while status == 429 || status == 503, retries < maximumPolls {
            try await Task.sleep(for: .seconds(min(max(retryAfter ?? 2, 1), 60)))
            (status, body, retryAfter) = try await send(request, http: http)
            retries += 1
        }
        for _ in 0..<maximumPolls {
            guard status == 202 || (status == 200 && body["status"] as? String == "assigning"),
                let operation = body["operationId"] as? String
            else { break }
            try await Task.sleep(for: .seconds(retryAfter ?? 2))
            var poll = HTTPClientRequest(url: base + "/operations/\(operation)?api-version=2021-06-01")
            poll.method = .GET
            (status, body, retryAfter) = try await send(poll, http: http)
        }
        return try DPSAssignment(operation: body, status: "HTTP \(status)")
    }

    private static func send(_ request: HTTPClientRequest, http: HTTPClient) async throws -> (Int, [String: Any], Int?)
    {
        let response = try await http.execute(request, timeout: .seconds(30))
        let data = try await response.body.collect(upTo: 1 << 20)
        let body = (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView))) as? [String: Any] ?? [:]
        return (Int(response.status.code), body, response.headers.first(name: "Retry-After").flatMap(Int.init))
    }
}
