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
            var response = dpsError(status: status, subcode: 1, message: message)
            if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
            return response
        case .hub, .hubDevice:
            // IoT Hub names the error in a header too, and ends its message with a tracking ID.
            headers[.iothubErrorCode] = code
            let tracking = "Tracking ID:\(UUID().uuidString.lowercased())-TimeStamp:\(Self.hubTime())"
            body = ["Message": "ErrorCode:\(code);\(message)", "ExceptionMessage": "\(message) \(tracking)"]
        case .central:
            // IoT Central: `x-ms-error-code`, and a request ID and time in the body.
            headers[.msErrorCode] = code
            body = [
                "error": [
                    "code": code, "message": message, "requestId": UUID().uuidString.lowercased(),
                    "time": ISO8601DateFormatter().string(from: Date()),
                ]
            ]
        case .keyVault, nil:
            body = ["error": ["code": code, "message": message]]
        }
        return (try? json(body, status: .init(code: status), headers: headers))
            ?? Response(status: .init(code: status))
    }
}

extension SandboxHTTP {
    /// DPS's error: `errorCode` is the HTTP status × 1000 + a subcode, echoed in `x-ms-error-code`.
    static func dpsError(status: Int, subcode: Int, message: String) -> Response {
        let errorCode = status * 1000 + subcode
        let body: [String: Any] = [
            "errorCode": errorCode, "trackingId": UUID().uuidString.lowercased(), "message": message,
            "timestampUtc": ISO8601DateFormatter().string(from: Date()),
        ]
        return (try? json(body, status: .init(code: status), headers: [.msErrorCode: String(errorCode)]))
            ?? Response(status: .init(code: status))
    }

    /// IoT Hub's error: `{"Message": "ErrorCode:<code>;<text>", "ExceptionMessage": ...}`.
    static func hubError(status: Int, code: String, message: String) -> Response {
        error(.hub, status: status, code: code, message: message)
    }
}

extension SandboxHTTP {
    /// The time as IoT Hub writes it in a tracking ID: `MM/dd/yyyy HH:mm:ss` in UTC.
    static func hubTime(_ date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "MM/dd/yyyy HH:mm:ss"
        return formatter.string(from: date)
    }
}

extension HTTPField.Name {
    static let iothubErrorCode = Self("iothub-errorcode")!
    static let msErrorCode = Self("x-ms-error-code")!
}
