public import Foundation

/// Permission for one device ID to join one group.
public struct AllowlistEntry: Sendable, Hashable, Codable {
    /// The device ID; see ``isValidDeviceID(_:)``.
    public var deviceID: String
    /// The name of the group the device joins.
    public var group: String
    /// A DDK epoch-0 public key (SPKI DER, base64url) the device must register with.
    public var pinnedKey: String?
    /// SHA-256 (hex) of a one-time enrollment token the device must present at first contact.
    public var tokenHash: String?
    /// Whether the enrollment token was used up (at registration or first enrollment); a changed import resets it.
    public var tokenUsed: Bool
    /// When the device was first allowlisted.
    public var createdAt: Date

    /// Creates an entry.
    public init(
        deviceID: String, group: String, pinnedKey: String? = nil, tokenHash: String? = nil, tokenUsed: Bool = false,
        createdAt: Date = Date()
    ) {
        self.deviceID = deviceID
        self.group = group
        self.pinnedKey = pinnedKey
        self.tokenHash = tokenHash
        self.tokenUsed = tokenUsed
        self.createdAt = createdAt
    }

    /// Device IDs follow DPS registration IDs: 1 to 128 characters of letters, digits and `: . _ -`.
    public static func isValidDeviceID(_ id: String) -> Bool {
        guard !id.isEmpty, id.count <= 128 else { return false }
        return id.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || ":._-".unicodeScalars.contains($0)
        }
    }
}

/// A single-use, short-lived challenge bound to one device.
public struct Challenge: Sendable, Hashable {
    /// 16 random bytes, base64url; the device names the challenge with it.
    public var id: String
    /// The only device that may use the challenge.
    public var deviceID: String
    /// 32 random bytes the device signs (or MACs) into its attestation.
    public var nonce: [UInt8]
    /// The DDK epoch whose key must sign: 0 to register, otherwise the device's current epoch.
    public var epoch: Int
    /// After this time the challenge is refused (60 seconds after issue by default).
    public var expiresAt: Date

    /// Creates a challenge.
    public init(id: String, deviceID: String, nonce: [UInt8], epoch: Int, expiresAt: Date) {
        self.id = id
        self.deviceID = deviceID
        self.nonce = nonce
        self.epoch = epoch
        self.expiresAt = expiresAt
    }
}
