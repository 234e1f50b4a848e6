import Foundation
import HTTPTypes
import Hummingbird
import KeygateDomain
import KeygatePKI

/// A submitted dashboard form: `application/x-www-form-urlencoded` fields, or `multipart/form-data`
/// fields and files (the allowlist CSV upload).
struct DashboardForm: Sendable {
    /// Text fields by name (the last value when a name repeats).
    var fields: [String: String] = [:]
    /// Uploaded files' contents by field name.
    var files: [String: [UInt8]] = [:]

    subscript(_ name: String) -> String? {
        guard let value = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            return nil
        }
        return value
    }

    /// Reads and parses the body of `request` (at most `limit` bytes), then checks its CSRF token
    /// against the session's: a form posted without it, or with another session's, is refused.
    static func read(_ request: Request, viewer: DashboardViewer?, limit: Int = 64 * 1024) async throws -> DashboardForm {
        let body = try await request.keygateBody(limit: limit)
        let contentType = request.headers[.contentType] ?? ""
        let form: DashboardForm
        if contentType.lowercased().hasPrefix("multipart/form-data") {
            form = try multipart(body, contentType: contentType)
        } else if contentType.lowercased().hasPrefix("application/x-www-form-urlencoded") {
            form = DashboardForm(fields: urlEncoded(String(decoding: body, as: UTF8.self)))
        } else {
            throw KeygateError(.unsupportedMediaType, "a dashboard form is sent as a form, not '\(contentType)'")
        }
        if let viewer {
            guard let given = form.fields["csrf"] ?? request.headers[.csrfToken],
                DashboardSessions.constantTimeEqual(given, viewer.csrf)
            else {
                throw KeygateError(.csrfTokenInvalid, "the form's CSRF token is missing or not this session's")
            }
        }
        return form
    }

    /// `a=1&b=x+y` → `["a": "1", "b": "x y"]`.
    static func urlEncoded(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// Parses a `multipart/form-data` body (RFC 7578): each part's name, and its file contents or text.
    static func multipart(_ body: [UInt8], contentType: String) throws -> DashboardForm {
        guard let range = contentType.range(of: "boundary=") else {
            throw KeygateError(.malformedInput, "the multipart form has no boundary")
        }
        var boundary = String(contentType[range.upperBound...])
        if let semicolon = boundary.firstIndex(of: ";") { boundary = String(boundary[..<semicolon]) }
        boundary = boundary.trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        guard !boundary.isEmpty, boundary.count <= 200 else {
            throw KeygateError(.malformedInput, "the multipart form's boundary is not valid")
        }
        let delimiter = Array("--\(boundary)".utf8)
        var form = DashboardForm()
        var starts: [Int] = []
        var index = 0
        while let found = find(delimiter, in: body, from: index) {
            starts.append(found)
            index = found + delimiter.count
        }
        guard starts.count >= 2 else { throw KeygateError(.malformedInput, "the multipart form has no parts") }
        for (start, end) in zip(starts, starts.dropFirst()) {
            var partStart = start + delimiter.count
            // Each delimiter line ends with CRLF; the part's content ends with the CRLF before the next one.
            if partStart + 1 < body.count, body[partStart] == 13, body[partStart + 1] == 10 { partStart += 2 }
            var partEnd = end
            if partEnd >= 2, body[partEnd - 2] == 13, body[partEnd - 1] == 10 { partEnd -= 2 }
            guard partStart <= partEnd else { continue }
            let part = Array(body[partStart..<partEnd])
            guard let headerEnd = find(Array("\r\n\r\n".utf8), in: part, from: 0) else {
                throw KeygateError(.malformedInput, "a part of the multipart form has no header")
            }
            let headers = String(decoding: part[..<headerEnd], as: UTF8.self)
            let content = Array(part[(headerEnd + 4)...])
            guard let disposition = headers.split(separator: "\r\n").first(where: {
                $0.lowercased().hasPrefix("content-disposition:")
            }), let name = parameter("name", in: disposition)
            else { throw KeygateError(.malformedInput, "a part of the multipart form has no name") }
            if parameter("filename", in: disposition) != nil {
                form.files[name] = content
            } else {
                form.fields[name] = String(decoding: content, as: UTF8.self)
            }
        }
        return form
    }

    private static func parameter(_ name: String, in header: Substring) -> String? {
        for piece in header.split(separator: ";") {
            let trimmed = piece.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix(name + "=") else { continue }
            return String(trimmed.dropFirst(name.count + 1)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else {
            return nil
        }
        var index = start
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == needle[0] {
                var matched = true
                for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                    matched = false
                    break
                }
                if matched { return index }
            }
            index += 1
        }
        return nil
    }
}

extension HTTPField.Name {
    /// The CSRF token of a dashboard request sent by script.
    static let csrfToken = Self("X-CSRF-Token")!
}
