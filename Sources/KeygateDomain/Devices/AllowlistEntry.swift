public import Foundation

/// Permission for one device ID to join one group.
public struct AllowlistEntry: Sendable, Hashable, Codable {
    public var deviceID: String
    public var group: String
    /// A DDK epoch-0 public key (SPKI DER, base64url) the device must register with.
    public var pinnedKey: String?
    /// SHA-256 (hex) of a one-time enrollment token the device must present at first contact.
    public var tokenHash: String?
    public var tokenUsed: Bool
    public var createdAt: Date

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
    public var id: String
    public var deviceID: String
    public var nonce: [UInt8]
    public var epoch: Int
    public var expiresAt: Date

    public init(id: String, deviceID: String, nonce: [UInt8], epoch: Int, expiresAt: Date) {
        self.id = id
        self.deviceID = deviceID
        self.nonce = nonce
        self.epoch = epoch
        self.expiresAt = expiresAt
    }
}
