import CPKCS11
import Crypto
public import KeygatePKI
import Synchronization
import NIOPosix
public import X509

/// A CA key inside a PKCS #11 token: generated there (sensitive, never extractable) or found by
/// label. Keygate hashes, the token signs the digest with `CKM_ECDSA`, and the raw `r‖s` becomes
/// the DER an X.509 signature needs.
///
/// PKCS #11 sessions are not thread-safe, so the signer keeps a small pool of logged-in sessions
/// and signs on NIO's blocking thread pool: concurrent issuance uses several sessions at once.
/// A session the token no longer knows (HSM reset, token removed) is thrown away and a new one
/// opened; while that fails, signing throws `signerUnavailable` (503 with Retry-After).
public final class PKCS11Signer: CertificateSigner {
    /// Sessions kept open per signer, unless the caller asks for another number.
    public static let defaultPoolSize = 4

    /// The key pair's public key, read from the token.
    public let publicKey: Certificate.PublicKey
    /// `ecdsa-p256` or `ecdsa-p384`.
    public let algorithm: KeyAlgorithm
    /// The token that holds the key.
    public let token: PKCS11Token
    /// The label (`CKA_LABEL`) of the key pair.
    public let keyLabel: String
    /// Where the key is: the module path, the token label and the key label.
    public var keyLocation: KeyLocation { .pkcs11(module: token.module.path, token: token.label, label: keyLabel) }
    /// ECDSA with SHA-384 for P-384 keys, with SHA-256 otherwise.
    public var signatureAlgorithm: Certificate.SignatureAlgorithm {
        algorithm == .p384 ? .ecdsaWithSHA384 : .ecdsaWithSHA256
    }
    private let pool: SessionPool

    private init(
        publicKey: Certificate.PublicKey, algorithm: KeyAlgorithm, token: PKCS11Token, keyLabel: String,
        poolSize: Int
    ) {
        self.publicKey = publicKey
        self.algorithm = algorithm
        self.token = token
        self.keyLabel = keyLabel
        self.pool = SessionPool(size: max(1, poolSize))
    }

    /// Uses the key pair labelled `label` in the token.
    public static func existing(token: PKCS11Token, label: String, poolSize: Int = defaultPoolSize) async throws
        -> PKCS11Signer
    {
        try await blocking {
            let session = try token.openSession()
            defer { session.close() }
            return try session.call {
                guard let publicHandle = try session.findObject(objectClass: CKO_PUBLIC_KEY, label: label),
                    try session.findObject(objectClass: CKO_PRIVATE_KEY, label: label) != nil
                else {
                    throw KeygateError(
                        .pkcs11KeyNotFound, "token '\(token.label)' holds no EC key pair labelled '\(label)'")
                }
                let (publicKey, algorithm) = try readPublicKey(session: session, handle: publicHandle)
                return PKCS11Signer(
                    publicKey: publicKey, algorithm: algorithm, token: token, keyLabel: label, poolSize: poolSize)
            }
        }
    }

    /// Generates a key pair labelled `label` inside the token: the private key is a token object,
    /// private, sensitive and not extractable. Refuses a label that is taken.
    public static func generate(
        token: PKCS11Token, label: String, algorithm: KeyAlgorithm, poolSize: Int = defaultPoolSize
    ) async throws -> PKCS11Signer {
        guard let curve = Curve(algorithm) else {
            throw KeygateError(
                .keyAlgorithmNotAllowed, "PKCS#11 CA keys are ecdsa-p256 or ecdsa-p384, not \(algorithm.rawValue)")
        }
        return try await blocking {
            let session = try token.openSession()
            defer { session.close() }
            return try session.call {
                if try session.findObject(objectClass: CKO_PRIVATE_KEY, label: label) != nil {
                    throw KeygateError(
                        .conflict, "token '\(token.label)' already holds a key labelled '\(label)'")
                }
                let id = Array(SHA256.hash(data: Array(label.utf8)).prefix(16))
                let publicTemplate = AttributeTemplate([
                    (CKA_TOKEN, .bool(true)), (CKA_VERIFY, .bool(true)), (CKA_EC_PARAMS, .bytes(curve.parameters)),
                    (CKA_LABEL, .bytes(Array(label.utf8))), (CKA_ID, .bytes(id)),
                ])
                let privateTemplate = AttributeTemplate([
                    (CKA_TOKEN, .bool(true)), (CKA_PRIVATE, .bool(true)), (CKA_SENSITIVE, .bool(true)),
                    (CKA_EXTRACTABLE, .bool(false)), (CKA_SIGN, .bool(true)),
                    (CKA_LABEL, .bytes(Array(label.utf8))), (CKA_ID, .bytes(id)),
                ])
                var mechanism = CK_MECHANISM(mechanism: CKM_EC_KEY_PAIR_GEN, pParameter: nil, ulParameterLen: 0)
                var publicHandle: CK_OBJECT_HANDLE = 0
                var privateHandle: CK_OBJECT_HANDLE = 0
                try publicTemplate.withAttributes { publicAttributes, publicCount in
                    try privateTemplate.withAttributes { privateAttributes, privateCount in
                        try session.module.check(
                            session.functions.pointee.C_GenerateKeyPair!(
                                session.handle, &mechanism, publicAttributes, publicCount, privateAttributes,
                                privateCount, &publicHandle, &privateHandle),
                            "C_GenerateKeyPair")
                    }
                }
                let (publicKey, _) = try readPublicKey(session: session, handle: publicHandle)
                return PKCS11Signer(
                    publicKey: publicKey, algorithm: algorithm, token: token, keyLabel: label, poolSize: poolSize)
            }
        }
    }

    /// Signs `message` (hashed here) in the token; answers a DER ECDSA signature. Throws `signerUnavailable`
    /// while no session can be opened and `signingFailed` for a malformed token answer.
    public func sign(_ message: [UInt8]) async throws -> [UInt8] {
        let digest = algorithm == .p384 ? Array(SHA384.hash(data: message)) : Array(SHA256.hash(data: message))
        let lease = await pool.acquire()
        let (kept, result) = try await Self.blocking { [self] in signBlocking(digest: digest, lease: lease) }
        pool.release(kept)
        let raw = try result.get()
        do {
            switch algorithm {
            case .p384: return Array(try P384.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
            default: return Array(try P256.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
            }
        } catch {
            throw KeygateError(.signingFailed, "the token returned a signature that is not a raw r‖s")
        }
    }

    /// Signs with the leased session, or a new one; a lost session is replaced once.
    private func signBlocking(digest: [UInt8], lease: Lease?) -> (Lease?, Result<[UInt8], any Error>) {
        var lease = lease
        var lastError: (any Error)?
        for _ in 0..<2 {
            if let current = lease, current.session.generation != token.module.generation {
                lease = nil  // opened before the module was reset: its handle means nothing now
            }
            do {
                let current = try lease ?? openLease()
                lease = current
                let raw = try current.session.signECDSA(
                    digest: digest, key: current.key, signatureLength: algorithm == .p384 ? 96 : 64)
                return (current, .success(raw))
            } catch let failure as PKCS11Failure {
                if let current = lease {
                    if failure.moduleLost {
                        token.module.markLost(generation: current.session.generation)
                    } else {
                        current.session.close()
                    }
                }
                lease = nil
                lastError = failure.error
                if !failure.sessionLost { break }
            } catch {
                lease?.session.close()
                lease = nil
                lastError = error
                break
            }
        }
        return (
            lease, .failure(lastError ?? KeygateError(.signerUnavailable, "the HSM cannot sign now", retryAfter: 2))
        )
    }

    private func openLease() throws -> Lease {
        let session = try token.openSession()
        do {
            guard let key = try session.findObject(objectClass: CKO_PRIVATE_KEY, label: keyLabel) else {
                throw KeygateError(
                    .signerUnavailable, "token '\(token.label)' no longer holds the key '\(keyLabel)'", retryAfter: 5)
            }
            return Lease(session: session, key: key)
        } catch {
            session.close()
            throw error
        }
    }

    /// How the private key is protected, as the token reports it.
    public struct KeyProtection: Sendable, Hashable {
        /// `CKA_TOKEN`: the key is a persistent token object.
        public var token: Bool
        /// `CKA_PRIVATE`: the key can be used only after login.
        public var `private`: Bool
        /// `CKA_SENSITIVE`: the key value cannot be read in plaintext.
        public var sensitive: Bool
        /// `CKA_EXTRACTABLE`: the key can be wrapped out of the token.
        public var extractable: Bool
        /// `CKA_ALWAYS_SENSITIVE`: the key has always been sensitive.
        public var alwaysSensitive: Bool
        /// `CKA_NEVER_EXTRACTABLE`: the key has never been extractable.
        public var neverExtractable: Bool
    }

    /// Reads the private key's protection attributes through PKCS #11.
    public func keyProtection() async throws -> KeyProtection {
        let token = self.token
        let label = keyLabel
        return try await Self.blocking {
            let session = try token.openSession()
            defer { session.close() }
            return try session.call {
                guard let key = try session.findObject(objectClass: CKO_PRIVATE_KEY, label: label) else {
                    throw KeygateError(.pkcs11KeyNotFound, "no private key labelled '\(label)'")
                }
                return KeyProtection(
                    token: try session.bool(CKA_TOKEN, of: key), private: try session.bool(CKA_PRIVATE, of: key),
                    sensitive: try session.bool(CKA_SENSITIVE, of: key),
                    extractable: try session.bool(CKA_EXTRACTABLE, of: key),
                    alwaysSensitive: try session.bool(CKA_ALWAYS_SENSITIVE, of: key),
                    neverExtractable: try session.bool(CKA_NEVER_EXTRACTABLE, of: key))
            }
        }
    }

    // MARK: Plumbing

    struct Lease: Sendable {
        let session: PKCS11Session
        let key: CK_OBJECT_HANDLE
    }

    /// Runs a blocking PKCS #11 call off the cooperative thread pool.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    private static func readPublicKey(session: PKCS11Session, handle: CK_OBJECT_HANDLE) throws
        -> (Certificate.PublicKey, KeyAlgorithm)
    {
        let parameters = try session.attribute(CKA_EC_PARAMS, of: handle)
        guard let curve = Curve.allCases.first(where: { $0.parameters == parameters }) else {
            throw KeygateError(.unsupportedKey, "the token's key is not on P-256 or P-384")
        }
        var point = try session.attribute(CKA_EC_POINT, of: handle)
        // Tokens answer the point wrapped in a DER OCTET STRING (as the standard says) or bare.
        let length = curve.pointLength
        if point.count == length + 2, point[0] == 0x04, Int(point[1]) == length {
            point.removeFirst(2)
        }
        do {
            switch curve {
            case .p256: return (.init(try P256.Signing.PublicKey(x963Representation: point)), .p256)
            case .p384: return (.init(try P384.Signing.PublicKey(x963Representation: point)), .p384)
            }
        } catch {
            throw KeygateError(.unsupportedKey, "the token's public key point cannot be read: \(error)")
        }
    }

    enum Curve: CaseIterable {
        case p256, p384

        init?(_ algorithm: KeyAlgorithm) {
            switch algorithm {
            case .p256: self = .p256
            case .p384: self = .p384
            default: return nil
            }
        }

        /// `CKA_EC_PARAMS`: the DER of the named curve's OID.
        var parameters: [UInt8] {
            switch self {
            case .p256: return [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
            case .p384: return [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22]
            }
        }

        /// An uncompressed point: 0x04 ‖ x ‖ y.
        var pointLength: Int { self == .p256 ? 65 : 97 }
    }
}

extension PKCS11Session {
    /// Runs `body`, turning PKCS #11 failures into Keygate errors.
    func call<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let failure as PKCS11Failure {
            if failure.moduleLost { module.markLost(generation: generation) }
            throw failure.error
        }
    }
}

/// At most `size` sessions in use at once; idle sessions are kept for the next caller.
final class SessionPool: Sendable {
    private struct State {
        var idle: [PKCS11Signer.Lease] = []
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(size: Int) {
        state = Mutex(State(available: size))
    }

    /// Waits for a turn; returns an idle session if there is one.
    func acquire() async -> PKCS11Signer.Lease? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        return state.withLock { $0.idle.popLast() }
    }

    /// Ends a turn, keeping the session (if still good) for the next caller.
    func release(_ lease: PKCS11Signer.Lease?) {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let lease { state.idle.append(lease) }
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
