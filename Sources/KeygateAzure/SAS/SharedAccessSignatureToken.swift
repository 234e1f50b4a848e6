import Crypto
public import Foundation

/// A shared access signature for the DPS service API and the IoT Hub registry:
/// `SharedAccessSignature sr=<url-encoded lower-cased resource>&sig=<url-encoded base64 HMAC-SHA256>&se=<unix seconds>&skn=<policy>`,
/// signing `sr + "\n" + se` with the base64-decoded policy key.
public enum SharedAccessSignatureToken {
    /// A `SharedAccessSignature sr=…&sig=…&se=…&skn=…` token for `resource` (lower-cased, URL-encoded),
    /// signed with `key` (base64) until `expiry`; throws ``SharedAccessKeyInvalid`` for a key that is not base64.
    public static func make(resource: String, keyName: String, key: String, expiry: Date) throws -> String {
        guard let keyBytes = Data(base64Encoded: key) else {
            throw SharedAccessKeyInvalid()
        }
        let sr = encode(resource.lowercased())
        let se = String(Int(expiry.timeIntervalSince1970))
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array((sr + "\n" + se).utf8), using: SymmetricKey(data: keyBytes))
        return "SharedAccessSignature sr=\(sr)&sig=\(encode(Data(mac).base64EncodedString()))&se=\(se)&skn=\(keyName)"
    }

    /// Percent-encodes everything but unreserved characters, as the SDKs do.
    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
            ?? text
    }

    /// The parts of `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`.
    public struct ConnectionString: Sendable, Hashable {
        /// The service host (with its port, when given).
        public var hostName: String
        /// The shared-access policy name (`provisioningserviceowner`, `iothubowner`, …).
        public var keyName: String
        /// The policy's key, base64.
        public var key: String

        /// Parses `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`; throws ``SharedAccessKeyInvalid``
        /// when a part is missing or the key is not base64.
        public init(_ text: String) throws {
            var fields: [String: String] = [:]
            for part in text.split(separator: ";") {
                let pair = part.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { throw SharedAccessKeyInvalid() }
                fields[String(pair[0])] = String(pair[1])
            }
            guard let host = fields["HostName"], let name = fields["SharedAccessKeyName"],
                let key = fields["SharedAccessKey"]
            else { throw SharedAccessKeyInvalid() }
            hostName = host
            keyName = name
            self.key = key
        }

        /// A token for the whole host, valid for `lifetime` seconds.
        public func token(lifetime: TimeInterval = 3600, now: Date = Date()) throws -> String {
            try SharedAccessSignatureToken.make(resource: hostName, keyName: keyName, key: key, expiry: now + lifetime)
        }
    }
}

/// A shared-access key that is not base64.
public struct SharedAccessKeyInvalid: Error, CustomStringConvertible {
    /// What is wrong, for the operator.
    public var description: String {
        "the connection string must be HostName=…;SharedAccessKeyName=…;SharedAccessKey=<base64>"
    }
}
