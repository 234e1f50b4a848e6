import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// Talks to a running sandbox's control endpoint (faults and quotas), from the facts in its
/// `connection.json`: `keygate sandbox faults` and tests use it to turn Azure "down" and "up".
public struct SandboxControlClient: Sendable {
    /// The sandbox it controls.
    public let connection: SandboxServer.Connection

    /// A client for the sandbox described by `connection` (its control URLs and token, its CA).
    public init(connection: SandboxServer.Connection) {
        self.connection = connection
    }

    /// Reads `connection.json` from a sandbox data folder.
    public init(dataDirectory: String) throws {
        let path = dataDirectory + "/connection.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SandboxControlError(message: "no \(path): is the sandbox running with --data-dir \(dataDirectory)?")
        }
        self.connection = try JSONDecoder().decode(SandboxServer.Connection.self, from: data)
    }

    /// The current settings and counts.
    public func report() async throws -> FaultInjector.Report {
        try await call(.GET, url: connection.control.faultsURL, body: nil)
    }

    /// Enrollments, registrations and hub devices with status and telemetry counts.
    public func inventory() async throws -> SandboxInventory {
        try await call(.GET, url: connection.control.inspectURL, body: nil)
    }

    /// Changes `surface` (or every surface when `nil`) and answers the new settings.
    @discardableResult
    public func set(_ change: FaultSettings.Change, surface: SandboxSurface? = nil) async throws
        -> FaultInjector.Report
    {
        let url = connection.control.faultsURL + "/" + (surface?.rawValue ?? "all")
        return try await call(.PUT, url: url, body: try JSONEncoder().encode(change))
    }

    private func call<Answer: Decodable>(_ method: HTTPMethod, url: String, body: Data?) async throws -> Answer {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(connection.caCertificate)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        defer { _ = http.shutdown() }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(connection.control.token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: .seconds(10))
        let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        guard response.status == .ok else {
            throw SandboxControlError(
                message:
                    "the control endpoint answered \(response.status.code): \(String(decoding: data, as: UTF8.self))")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(Answer.self, from: data)
    }
}

/// The control endpoint refused a call, or could not be reached.
public struct SandboxControlError: Error, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// The message.
    public var description: String { message }
}
