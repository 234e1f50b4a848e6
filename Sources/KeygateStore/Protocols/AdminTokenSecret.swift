import Crypto
import Foundation
import KeygateDomain
import KeygatePKI

/// Making and checking admin tokens.
public enum AdminTokenSecret {
    /// A new random token: `kg_` and 32 random bytes in base64url.
    public static func generate() -> String {
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Data($0) }
        return AdminToken.prefix + Base64URL.encode(Array(bytes))
    }

    /// The hex SHA-256 under which a token is stored.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).withUnsafeBytes { Hex.encode(Array($0)) }
    }
}
