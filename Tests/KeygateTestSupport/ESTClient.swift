import Foundation

/// An EST client made of outside tools — curl for HTTP and TLS client authentication, openssl for
/// keys, CSRs and the certs-only answers — since no EST client is packaged for this machine.
public struct ESTClient: Sendable {
    /// The server's base URL (`https://127.0.0.1:PORT`).
    public let baseURL: String
    /// The CA file that verifies the server.
    public let caFile: String
    /// Where requests and answers are written.
    public let folder: TemporaryDirectory

    public init(baseURL: String, caFile: String, folder: TemporaryDirectory) {
        self.baseURL = baseURL
        self.caFile = caFile
        self.folder = folder
    }

    /// An answer: status, headers (lower-cased names) and the body file.
    public struct Answer: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var bodyFile: String
        public var body: String { (try? String(contentsOfFile: bodyFile, encoding: .utf8)) ?? "" }
    }

    /// Runs one request with curl. `body` is a file sent as-is; `certificate`/`key` authenticate with
    /// TLS, `basic` (`user:password`) with HTTP Basic.
    public func request(
        _ method: String, _ path: String, body: String? = nil, contentType: String? = "application/pkcs10",
        certificate: String? = nil, key: String? = nil, basic: String? = nil, name: String
    ) async throws -> Answer {
        let out = folder.file("\(name).body")
        let head = folder.file("\(name).head")
        var arguments = [
            "-s", "-S", "-X", method, "--cacert", caFile, "-o", out, "-D", head, "-w", "%{http_code}",
            baseURL + path,
        ]
        if let body {
            arguments += ["--data-binary", "@" + body]
            if let contentType { arguments += ["-H", "Content-Type: \(contentType)"] }
        }
        if let certificate, let key { arguments += ["--cert", certificate, "--key", key] }
        if let basic { arguments += ["-u", basic] }
        let run = try await ExternalTool.require("curl").run(arguments, timeout: 30)
        guard run.status == 0, let status = Int(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ESTClientError("curl failed: \(run.combined)")
        }
        var headers: [String: String] = [:]
        for line in ((try? String(contentsOfFile: head, encoding: .utf8)) ?? "").split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: status, headers: headers, bodyFile: out)
    }

    /// A new P-256 key and a CSR for it, base64 of DER as EST sends it: answers (key file, request file).
    public func makeCSR(_ name: String, keyType: [String] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        async throws -> (key: String, request: String)
    {
        let key = folder.file("\(name).key.pem")
        try await makeCSR(name, newKey: keyType + ["-keyout", key])
        return (key, folder.file("\(name).csr.b64"))
    }

    /// A CSR for an existing key file (a renewal that keeps its key).
    public func makeCSR(_ name: String, existingKey key: String) async throws -> String {
        try await makeCSR(name, newKey: ["-key", key])
        return folder.file("\(name).csr.b64")
    }

    private func makeCSR(_ name: String, newKey: [String]) async throws {
        let der = folder.file("\(name).csr.der")
        let made = try await ExternalTool.openssl.run(
            ["req", "-new", "-nodes"] + newKey + ["-subj", "/CN=chosen-by-the-device", "-outform", "DER", "-out", der])
        guard made.status == 0 else { throw ESTClientError("openssl req: \(made.combined)") }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: der))
        try Data(bytes.base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed]).utf8)
            .write(to: URL(fileURLWithPath: folder.file("\(name).csr.b64")))
    }

    /// The certificates of a certs-only answer (base64 of DER CMS), as PEM in one file, through
    /// `openssl pkcs7 -print_certs`; answers the file and openssl's text.
    public func certificates(of answer: Answer, name: String) async throws -> (file: String, text: String) {
        let compact = answer.body.filter { !$0.isWhitespace }
        guard let der = Data(base64Encoded: compact) else { throw ESTClientError("the answer is not base64") }
        let derFile = folder.file("\(name).p7.der")
        try der.write(to: URL(fileURLWithPath: derFile))
        let pem = folder.file("\(name).crt.pem")
        let printed = try await ExternalTool.openssl.run([
            "pkcs7", "-inform", "DER", "-in", derFile, "-print_certs", "-out", pem,
        ])
        guard printed.status == 0 else { throw ESTClientError("openssl pkcs7: \(printed.combined)") }
        return (pem, try String(contentsOfFile: pem, encoding: .utf8))
    }
}

/// A failure of the EST test client itself (not of the server).
public struct ESTClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
