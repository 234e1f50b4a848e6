import Crypto
import Foundation

/// A shared access policy of DPS or IoT Hub: a name, two keys and its rights.
struct SharedAccessPolicy: Codable, Sendable {
    var name: String
    var primaryKey: String
    var secondaryKey: String
    var rights: [String]

    static func generate(name: String, rights: [String]) -> SharedAccessPolicy {
        func key() -> String { Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).base64EncodedString() }
        return SharedAccessPolicy(name: name, primaryKey: key(), secondaryKey: key(), rights: rights)
    }
}

/// Checks `Authorization: SharedAccessSignature sr=…&sig=…&se=…&skn=…` as DPS and IoT Hub do:
/// `sig = base64(HMAC-SHA256(base64decode(key), sr + "\n" + se))` with `sr` exactly as in the token,
/// `se` in the future, `skn` a known policy, and `sr` naming the host the request came to.
enum SharedAccessSignature {
    enum Failure: Error, Equatable {
        case missing
        case malformed
        case unknownPolicy
        case expired
        case wrongResource
        case badSignature
        case missingRight(String)

        var message: String {
            switch self {
            case .missing: return "The request has no SharedAccessSignature authorization."
            case .malformed: return "The SharedAccessSignature is malformed."
            case .unknownPolicy: return "The SharedAccessSignature names an unknown policy."
            case .expired: return "The SharedAccessSignature has expired."
            case .wrongResource: return "The SharedAccessSignature is for another resource."
            case .badSignature: return "The SharedAccessSignature does not match."
            case .missingRight(let right): return "The policy does not grant \(right)."
            }
        }
    }

    /// The policy that signed `header`, if the signature holds and grants `right`.
    static func verify(
        header: String?, host: String?, policies: [SharedAccessPolicy], right: String, now: Date = Date()
    ) -> Result<SharedAccessPolicy, Failure> {
        guard let header, header.hasPrefix("SharedAccessSignature ") else { return .failure(.missing) }
        var fields: [String: String] = [:]
        for pair in header.dropFirst("SharedAccessSignature ".count).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { return .failure(.malformed) }
            fields[String(parts[0])] = String(parts[1])
        }
        guard let sr = fields["sr"], let signature = fields["sig"], let se = fields["se"], let expiry = Double(se),
            let name = fields["skn"]
        else { return .failure(.malformed) }
        guard let policy = policies.first(where: { $0.name == name }) else { return .failure(.unknownPolicy) }
        guard expiry > now.timeIntervalSince1970 else { return .failure(.expired) }
        let resource = (sr.removingPercentEncoding ?? sr).lowercased()
        let resourceHost = resource.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        if let host, resourceHost != host.lowercased() { return .failure(.wrongResource) }
        guard let given = Data(base64Encoded: signature.removingPercentEncoding ?? signature) else {
            return .failure(.malformed)
        }
        let message = Array((sr + "\n" + se).utf8)
        let matches = [policy.primaryKey, policy.secondaryKey].contains { key in
            guard let keyBytes = Data(base64Encoded: key) else { return false }
            let expected = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: keyBytes))
            return expected == given  // swift-crypto compares authentication codes in constant time

        }
        guard matches else { return .failure(.badSignature) }
        guard policy.rights.contains(right) else { return .failure(.missingRight(right)) }
        return .success(policy)
    }
}
