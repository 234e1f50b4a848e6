import Crypto
import CryptoExtras
public import X509

extension Certificate.PublicKey {
    /// A short human description: `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    public var keygateDescription: String {
        if P256.Signing.PublicKey(self) != nil { return "ECDSA P-256" }
        if P384.Signing.PublicKey(self) != nil { return "ECDSA P-384" }
        if P521.Signing.PublicKey(self) != nil { return "ECDSA P-521" }
        if let rsa = _RSA.Signing.PublicKey(self) { return "RSA \(rsa.keySizeInBits)" }
        if Curve25519.Signing.PublicKey(self) != nil { return "Ed25519" }
        return "unknown"
    }
}
