import CPKCS11
import KeygatePKI

/// Where a key lives: a module, a token in it (by label) and the user PIN.
public struct PKCS11Token: Sendable {
    /// The loaded module that holds the token.
    public let module: PKCS11Module
    /// The token's label, as `C_GetTokenInfo` reports it.
    public let label: String
    let pin: String

    /// Refers to the token labelled `label` in `module`; nothing is opened until a session is needed.
    public init(module: PKCS11Module, label: String, pin: String) {
        self.module = module
        self.label = label
        self.pin = pin
    }

    /// Opens a read-write session on the token and logs the user in (once per application,
    /// so `CKR_USER_ALREADY_LOGGED_IN` is fine). Blocking: call from a thread pool.
    func openSession() throws -> PKCS11Session {
        let generation: Int
        do {
            generation = try module.ensureInitialized()
        } catch let failure as PKCS11Failure {
            throw failure.error
        }
        let functions = module.functions
        do {
            let slot = try module.slot(tokenLabel: label)
            var handle: CK_SESSION_HANDLE = 0
            try module.check(
                functions.pointee.C_OpenSession!(
                    slot, PKCS11Constants.serialSession | PKCS11Constants.readWriteSession, nil, nil, &handle),
                "C_OpenSession")
            var pinBytes = Array(pin.utf8)
            let rv = functions.pointee.C_Login!(handle, PKCS11Constants.userType, &pinBytes, CK_ULONG(pinBytes.count))
            guard rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN else {
                _ = functions.pointee.C_CloseSession!(handle)
                throw PKCS11Failure(rv, "C_Login")
            }
            return PKCS11Session(handle: handle, generation: generation, module: module)
        } catch let failure as PKCS11Failure {
            if failure.moduleLost { module.markLost(generation: generation) }
            throw failure.error
        }
    }
}

/// An open, logged-in session. Sessions are not thread-safe: one caller at a time.
struct PKCS11Session: @unchecked Sendable {
    let handle: CK_SESSION_HANDLE
    let generation: Int
    let module: PKCS11Module
    var functions: UnsafeMutablePointer<CK_FUNCTION_LIST> { module.functions }

    func close() {
        _ = functions.pointee.C_CloseSession!(handle)
    }

    /// The one object of `objectClass` labelled `label`, or `nil`.
    func findObject(objectClass: CK_ULONG, label: String) throws -> CK_OBJECT_HANDLE? {
        let template = AttributeTemplate([(CKA_CLASS, .ulong(objectClass)), (CKA_LABEL, .bytes(Array(label.utf8)))])
        try template.withAttributes { attributes, count in
            try module.check(functions.pointee.C_FindObjectsInit!(handle, attributes, count), "C_FindObjectsInit")
        }
        defer { _ = functions.pointee.C_FindObjectsFinal!(handle) }
        var found = [CK_OBJECT_HANDLE](repeating: 0, count: 2)
        var count: CK_ULONG = 0
        try module.check(functions.pointee.C_FindObjects!(handle, &found, 2, &count), "C_FindObjects")
        guard count <= 1 else {
            throw KeygateError(
                .pkcs11Failed, "the token holds more than one key labelled '\(label)'; give each key its own label")
        }
        return count == 1 ? found[0] : nil
    }

    /// The value of one attribute of an object.
    func attribute(_ type: CK_ATTRIBUTE_TYPE, of object: CK_OBJECT_HANDLE) throws -> [UInt8] {
        var attribute = CK_ATTRIBUTE(type: type, pValue: nil, ulValueLen: 0)
        try module.check(functions.pointee.C_GetAttributeValue!(handle, object, &attribute, 1), "C_GetAttributeValue")
        var value = [UInt8](repeating: 0, count: Int(attribute.ulValueLen))
        try value.withUnsafeMutableBytes { buffer in
            attribute.pValue = buffer.baseAddress
            try module.check(
                functions.pointee.C_GetAttributeValue!(handle, object, &attribute, 1), "C_GetAttributeValue")
        }
        return Array(value.prefix(Int(attribute.ulValueLen)))
    }

    func bool(_ type: CK_ATTRIBUTE_TYPE, of object: CK_OBJECT_HANDLE) throws -> Bool {
        try attribute(type, of: object).first == 1
    }

    /// `CKM_ECDSA` over a digest: the raw `r‖s`.
    func signECDSA(digest: [UInt8], key: CK_OBJECT_HANDLE, signatureLength: Int) throws -> [UInt8] {
        var mechanism = CK_MECHANISM(mechanism: CKM_ECDSA, pParameter: nil, ulParameterLen: 0)
        try module.check(functions.pointee.C_SignInit!(handle, &mechanism, key), "C_SignInit")
        var input = digest
        var signature = [UInt8](repeating: 0, count: signatureLength)
        var length = CK_ULONG(signatureLength)
        try module.check(
            functions.pointee.C_Sign!(handle, &input, CK_ULONG(input.count), &signature, &length), "C_Sign")
        return Array(signature.prefix(Int(length)))
    }
}

/// A PKCS #11 attribute template whose values stay allocated for the length of one call.
struct AttributeTemplate {
    enum Value {
        case bool(Bool)
        case ulong(CK_ULONG)
        case bytes([UInt8])

        var bytes: [UInt8] {
            switch self {
            case .bool(let value): return [value ? 1 : 0]
            case .ulong(let value): return withUnsafeBytes(of: value) { Array($0) }
            case .bytes(let value): return value
            }
        }
    }

    let items: [(CK_ATTRIBUTE_TYPE, Value)]

    init(_ items: [(CK_ATTRIBUTE_TYPE, Value)]) {
        self.items = items
    }

    func withAttributes<T>(_ body: (UnsafeMutablePointer<CK_ATTRIBUTE>, CK_ULONG) throws -> T) rethrows -> T {
        let buffers = items.map { item -> UnsafeMutableRawBufferPointer in
            let bytes = item.1.bytes
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
            buffer.copyBytes(from: bytes)
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        var attributes = zip(items, buffers).map { item, buffer in
            CK_ATTRIBUTE(type: item.0, pValue: buffer.baseAddress, ulValueLen: CK_ULONG(item.1.bytes.count))
        }
        return try attributes.withUnsafeMutableBufferPointer { try body($0.baseAddress!, CK_ULONG($0.count)) }
    }
}
