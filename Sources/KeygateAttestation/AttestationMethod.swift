/// How a device proves who it is.
public enum AttestationMethod: String, CaseIterable, Codable, Sendable, Hashable {
    /// Dynamic device keys derived from the device's attributes (docs/ddk.md).
    case ddk
    /// A manufacturer (bootstrap) certificate whose chain ends at one of the group's CAs.
    case x509
    /// An HMAC with a device key derived from the group key, as DPS derives it.
    case symmetricKey = "symmetric-key"

    /// How much an attestation by this method is worth; a group may demand a minimum.
    ///
    /// A symmetric key is shared by the whole group (anyone who has the group key can be any device);
    /// DDK keys are per device and rotate, but a root attacker on the device can derive them;
    /// a bootstrap certificate comes from the factory.
    public var assuranceLevel: Int {
        switch self {
        case .symmetricKey: return 1
        case .ddk: return 2
        case .x509: return 3
        }
    }
}
