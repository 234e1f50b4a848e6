import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// JSON answers and the error bodies of each Azure surface.
enum SandboxHTTP {
    static func json(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func encoded(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    /// The error a surface answers with, in that service's own body format.
    static func error(
        _ surface: SandboxSurface?, status: Int, code: String, message: String, retryAfter: Int? = nil
    ) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        let body: [String: Any]
        switch surface {
        case .aad:
            body = [
                "error": status == 401 ? "invalid_client" : code, "error_description": message,
                "error_codes": [status == 401 ? 7_000_215 : 900_144],
                "timestamp": ISO8601DateFormatter().string(from: Date()),
            ]
        case .dpsService, .dpsDevice:
            let errorCode = status * 1000 + 1
            headers[HTTPField.Name.msErrorCode] = String(errorCode)
            body = [
                "errorCode": errorCode, "trackingId": UUID().uuidString.lowercased(), "message": message,
                "timestampUtc": ISO8601DateFormatter().string(from: Date()),
            ]
        case .hub:
            body = ["Message": "ErrorCode:\(code);\(message)", "ExceptionMessage": message]
        case .keyVault, .central, nil:
            body = ["error": ["code": code, "message": message]]
        }
        return (try? json(body, status: .init(code: status), headers: headers))
            ?? Response(status: .init(code: status))
    }
}

extension HTTPField.Name {
    static let msErrorCode = Self("x-ms-error-code")!
}
