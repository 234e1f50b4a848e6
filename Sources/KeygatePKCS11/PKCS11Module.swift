import CPKCS11
import Foundation
import KeygatePKI
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A PKCS #11 module (`libsofthsm2.so`, a vendor's HSM library) loaded into this process with
/// `dlopen`. PKCS #11 is initialised once per process, so modules are shared by path.
///
/// The module keeps a *generation*: it changes whenever the module is (re)initialised, and
/// sessions opened under an older generation are thrown away instead of used.
public final class PKCS11Module: @unchecked Sendable {
    /// The path the module was loaded from.
    public let path: String
    // The function list is owned by the module and valid until the library is unloaded (never).
    let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>
    private let state = Mutex(State())

    private struct State {
        var initialized = false
        var generation = 0
    }

    private static let loaded = Mutex<[String: PKCS11Module]>([:])

    private init(path: String, functions: UnsafeMutablePointer<CK_FUNCTION_LIST>) {
        self.path = path
        self.functions = functions
    }

    /// Loads (once per process) the module at `path`.
    public static func load(_ path: String) throws -> PKCS11Module {
        try loaded.withLock { modules in
            if let module = modules[path] { return module }
            guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
                let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
                throw KeygateError(.pkcs11ModuleUnusable, "cannot load the PKCS#11 module \(path): \(reason)")
            }
            guard let symbol = dlsym(handle, "C_GetFunctionList") else {
                throw KeygateError(.pkcs11ModuleUnusable, "\(path) is not a PKCS#11 module (no C_GetFunctionList)")
            }
            typealias GetFunctionList =
                @convention(c) (UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>?) -> CK_RV
            let getFunctionList = unsafeBitCast(symbol, to: GetFunctionList.self)
            var list: UnsafeMutablePointer<CK_FUNCTION_LIST>?
            let rv = getFunctionList(&list)
            guard rv == CKR_OK, let list else {
                throw KeygateError(
                    .pkcs11ModuleUnusable, "C_GetFunctionList of \(path) failed: \(PKCS11Module.name(of: rv))")
            }
            let module = PKCS11Module(path: path, functions: list)
            modules[path] = module
            return module
        }
    }

    /// The generation sessions must carry to be usable; -1 while the module is not initialised.
    var generation: Int { state.withLock { $0.initialized ? $0.generation : -1 } }

    /// The current generation, initialising the module first if needed.
    func ensureInitialized() throws -> Int {
        try state.withLock { state in
            if state.initialized { return state.generation }
            var arguments = CK_C_INITIALIZE_ARGS()
            arguments.flags = PKCS11Constants.osLockingOK
            let rv = withUnsafeMutablePointer(to: &arguments) { functions.pointee.C_Initialize!($0) }
            guard rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED else {
                throw PKCS11Failure(rv, "C_Initialize").error
            }
            state.initialized = true
            state.generation += 1
            return state.generation
        }
    }

    /// Called when the module said it is not initialised (the HSM was reset): the next call
    /// initialises it again, and every session of `generation` is discarded.
    func markLost(generation: Int) {
        state.withLock { state in
            guard state.generation == generation, state.initialized else { return }
            _ = functions.pointee.C_Finalize!(nil)
            state.initialized = false
        }
    }

    /// Finalises the module: every session is closed and the token is logged out, as when the
    /// HSM goes away. The next signature initialises it again. (Operations and tests use it.)
    public func finalize() {
        state.withLock { state in
            guard state.initialized else { return }
            _ = functions.pointee.C_Finalize!(nil)
            state.initialized = false
        }
    }

    /// The slot holding the token labelled `label`.
    func slot(tokenLabel label: String) throws -> CK_SLOT_ID {
        var count: CK_ULONG = 0
        try check(functions.pointee.C_GetSlotList!(1, nil, &count), "C_GetSlotList")
        var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
        try check(functions.pointee.C_GetSlotList!(1, &slots, &count), "C_GetSlotList")
        var seen: [String] = []
        for slot in slots.prefix(Int(count)) {
            var info = CK_TOKEN_INFO()
            guard functions.pointee.C_GetTokenInfo!(slot, &info) == CKR_OK else { continue }
            let tokenLabel = withUnsafeBytes(of: info.label) { PKCS11Module.paddedString(Array($0)) }
            if tokenLabel == label { return slot }
            seen.append(tokenLabel)
        }
        throw KeygateError(
            .pkcs11TokenNotFound,
            "no PKCS#11 token labelled '\(label)' in \(path)"
                + (seen.isEmpty ? " (no tokens present)" : " (tokens: \(seen.joined(separator: ", ")))"),
            retryAfter: 5)
    }

    func check(_ rv: CK_RV, _ function: String) throws {
        guard rv == CKR_OK else { throw PKCS11Failure(rv, function) }
    }

    /// PKCS #11 pads labels with spaces to 32 bytes.
    static func paddedString(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces.union(.controlCharacters))
    }

    /// A readable name for a return value (`CKR_PIN_INCORRECT (0xa0)`).
    static func name(of rv: CK_RV) -> String {
        let names: [CK_RV: String] = [
            0x05: "CKR_GENERAL_ERROR", 0x06: "CKR_FUNCTION_FAILED", 0x07: "CKR_ARGUMENTS_BAD",
            0x30: "CKR_DEVICE_ERROR", 0x31: "CKR_DEVICE_MEMORY", 0x32: "CKR_DEVICE_REMOVED",
            0x60: "CKR_KEY_HANDLE_INVALID", 0x68: "CKR_KEY_FUNCTION_NOT_PERMITTED", 0x70: "CKR_MECHANISM_INVALID",
            0x82: "CKR_OBJECT_HANDLE_INVALID", 0xA0: "CKR_PIN_INCORRECT", 0xA4: "CKR_PIN_LOCKED",
            0xB0: "CKR_SESSION_CLOSED", 0xB1: "CKR_SESSION_COUNT", 0xB3: "CKR_SESSION_HANDLE_INVALID",
            0xD1: "CKR_TEMPLATE_INCONSISTENT", 0xE0: "CKR_TOKEN_NOT_PRESENT", 0xE2: "CKR_TOKEN_WRITE_PROTECTED",
            0x101: "CKR_USER_NOT_LOGGED_IN", 0x150: "CKR_BUFFER_TOO_SMALL",
            0x190: "CKR_CRYPTOKI_NOT_INITIALIZED",
        ]
        return "\(names[rv] ?? "CKR") (0x\(String(rv, radix: 16)))"
    }
}

/// A failed PKCS #11 call, with what it means for the caller.
struct PKCS11Failure: Error, CustomStringConvertible {
    let rv: CK_RV
    let function: String

    init(_ rv: CK_RV, _ function: String) {
        self.rv = rv
        self.function = function
    }

    var description: String { "\(function) failed: \(PKCS11Module.name(of: rv))" }

    /// The module lost its state (reset, finalised): initialise again.
    var moduleLost: Bool { rv == CKR_CRYPTOKI_NOT_INITIALIZED }

    /// The session cannot be used again; a new one may work.
    var sessionLost: Bool {
        moduleLost
            || [
                0x05, 0x06, 0x30, 0x31, 0x32, 0x60, 0x82, 0xB0, 0xB3, 0xE0, 0x101,
            ].contains(rv)
    }

    /// The error a caller sees: temporary failures are `signerUnavailable` (503 with Retry-After).
    var error: KeygateError {
        switch rv {
        case CKR_PIN_INCORRECT, 0xA4:
            return KeygateError(.pkcs11PinIncorrect, "the PKCS#11 token refused the PIN (\(description))")
        case _ where sessionLost || rv == 0xB1:
            return KeygateError(.signerUnavailable, "the HSM cannot sign now: \(description)", retryAfter: 2)
        default:
            return KeygateError(.pkcs11Failed, description)
        }
    }
}

enum PKCS11Constants {
    static let osLockingOK: CK_FLAGS = 1 << 1
    static let serialSession: CK_FLAGS = 1 << 2
    static let readWriteSession: CK_FLAGS = 1 << 1
    static let userType: CK_USER_TYPE = 1
}
