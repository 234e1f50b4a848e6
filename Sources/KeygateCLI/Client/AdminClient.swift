import AsyncHTTPClient
import Foundation
import KeygatePKI
import NIOCore
import NIOHTTP1
import NIOSSL

/// A small JSON client for `/admin/v1`.
struct AdminClient {
    struct Target {
        var baseURL: String
        var token: String
        var caCertificateFile: String?
    }

    /// An error the server answered with.
    struct APIError: Error, CustomStringConvertible {
        var status: Int
        var code: String
        var message: String
        var description: String { "\(code): \(message) (HTTP \(status))" }
    }

    let target: Target
    let http: HTTPClient

    /// Runs `body` with a client and shuts it down afterwards.
    static func with<T>(_ target: Target, _ body: (AdminClient) async throws -> T) async throws -> T {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let file = target.caCertificateFile {
            tls.trustRoots = .file(file)
        }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        do {
            let result = try await body(AdminClient(target: target, http: http))
            try await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try await send(method: .GET, path: path, body: nil as [UInt8]?, as: type)
    }

    func post<B: Encodable, T: Decodable>(_ path: String, body: B, as type: T.Type) async throws -> T {
        let encoder = JSONEncoder()
        return try await send(method: .POST, path: path, body: Array(try encoder.encode(body)), as: type)
    }

    /// A request whose success carries no body (204).
    func delete(_ path: String) async throws {
        _ = try await exchange(method: .DELETE, path: path, body: nil)
    }

    func send<T: Decodable>(method: HTTPMethod, path: String, body: [UInt8]?, as type: T.Type) async throws -> T {
        let data = try await exchange(method: method, path: path, body: body)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(T.self, from: data)
    }

    private func exchange(method: HTTPMethod, path: String, body: [UInt8]?) async throws -> Data {
        let base = target.baseURL.hasSuffix("/") ? String(target.baseURL.dropLast()) : target.baseURL
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(target.token)")
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(60))
        } catch {
            throw CLIError("cannot reach \(base): \(error)")
        }
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let data = Data(bytes.readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            if let error = try? JSONDecoder().decode(ErrorBody.self, from: data) {
                throw APIError(status: Int(response.status.code), code: error.code, message: error.message)
            }
            throw APIError(
                status: Int(response.status.code), code: "http\(response.status.code)", message: "unexpected answer")
        }
        return data
    }
}

/// A message for the user; the command exits non-zero.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

private struct ErrorBody: Decodable {
    var code: String
    var message: String
}
