import Foundation
import Hummingbird
import KeygatePKI
import Logging
import NIOCore

/// Turns every error into JSON `{"code", "message"}` with the status its kind calls for.
///
/// Errors Keygate did not anticipate become `internalError` (500) and are logged; their text is
/// not sent to the client.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as KeygateError {
            if error.code.kind == .internalError {
                context.logger.error(
                    "request failed", metadata: ["code": "\(error.code)", "error": "\(error.message)"])
            }
            return Self.response(for: error)
        } catch let error as HTTPError {
            return Self.response(for: Self.keygateError(from: error))
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)"])
            return Self.response(for: KeygateError(.internalError, "an unexpected error occurred"))
        }
    }

    static func keygateError(from error: HTTPError) -> KeygateError {
        switch error.status {
        case .notFound: return KeygateError(.routeNotFound, "no such route")
        case .methodNotAllowed: return KeygateError(.methodNotAllowed, "method not allowed on this route")
        case .contentTooLarge: return KeygateError(.bodyTooLarge, "the request body is too large")
        case .unauthorized: return KeygateError(.unauthorized, error.body ?? "authentication required")
        case .badRequest: return KeygateError(.malformedInput, error.body ?? "bad request")
        default:
            return KeygateError(
                .init("http\(error.status.code)", kind: .invalidInput), error.body ?? error.status.reasonPhrase)
        }
    }

    static func response(for error: KeygateError) -> Response {
        let json = (try? JSONEncoder().encode(ErrorBody(code: error.code.rawValue, message: error.message))) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter = error.retryAfter ?? (error.code.kind == .unavailable ? 5 : nil) {
            headers[.retryAfter] = String(retryAfter)
        }
        if error.code.kind == .unauthorized {
            headers[.wwwAuthenticate] = "Bearer realm=\"keygate\""
        }
        return Response(
            status: error.code.httpStatus, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }
}

extension KeygateError.Code {
    /// The status of an error with this code: its kind's, but for the few HTTP has a status of its own.
    var httpStatus: HTTPResponse.Status {
        switch self {
        case .unsupportedMediaType: return .unsupportedMediaType
        case .methodNotAllowed: return .methodNotAllowed
        case .estOperationNotSupported: return .notImplemented
        default: return kind.httpStatus
        }
    }
}

extension KeygateError.Kind {
    var httpStatus: HTTPResponse.Status {
        switch self {
        case .invalidInput: return .badRequest
        case .unauthorized: return .unauthorized
        case .forbidden: return .forbidden
        case .notFound: return .notFound
        case .conflict: return .conflict
        case .tooLarge: return .contentTooLarge
        case .rateLimited: return .tooManyRequests
        case .unavailable: return .serviceUnavailable
        case .internalError: return .internalServerError
        }
    }
}

extension Request {
    /// Reads the whole body, refusing more than `limit` bytes with `bodyTooLarge` (413).
    func keygateBody(limit: Int) async throws -> [UInt8] {
        if let length = headers[.contentLength].flatMap(Int.init), length > limit {
            throw KeygateError(.bodyTooLarge, "the request body is \(length) bytes; at most \(limit) are accepted")
        }
        do {
            var buffer = try await body.collect(upTo: limit)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch is NIOTooManyBytesError {
            throw KeygateError(.bodyTooLarge, "the request body is larger than \(limit) bytes")
        }
    }

    /// A JSON route takes `Content-Type: application/json` (or a `+json` type), else 415
    /// `unsupportedMediaType`: a browser's form post cannot reach it.
    func requireJSONContentType() throws {
        let type = (headers[.contentType] ?? "").split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        guard type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json")) else {
            throw KeygateError(
                .unsupportedMediaType,
                "this route takes Content-Type: application/json, not \(type.isEmpty ? "none" : type)")
        }
    }

    /// An optional JSON body: `nil` when the request has none.
    func keygateOptionalJSON<T: Decodable>(_ type: T.Type, limit: Int = 64 * 1024) async throws -> T? {
        let bytes = try await keygateBody(limit: limit)
        guard !bytes.isEmpty else { return nil }
        try requireJSONContentType()
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw KeygateError(.malformedJSON, "the request body is not valid JSON for this call: \(error)")
        }
    }

    /// Decodes a JSON body into `T`, with `malformedJSON` for anything that does not fit.
    func keygateJSON<T: Decodable>(_ type: T.Type, limit: Int = 64 * 1024) async throws -> T {
        let bytes = try await keygateBody(limit: limit)
        guard !bytes.isEmpty else { throw KeygateError(.malformedJSON, "the request body is empty; JSON expected") }
        try requireJSONContentType()
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, _) {
            throw KeygateError(.malformedJSON, "the JSON body lacks the field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw KeygateError(.malformedJSON, "the JSON field '\(path)' has the wrong type")
        } catch {
            throw KeygateError(.malformedJSON, "the request body is not valid JSON")
        }
    }
}

/// A JSON response.
func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return Response(
        status: status, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

/// The body of every error answer.
struct ErrorBody: Codable {
    var code: String
    var message: String
}
