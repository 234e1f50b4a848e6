import Dispatch
import Foundation
import KeygatePKI
import X509

/// The input as an array.
public func fuzzInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// A finding that is not a crash by itself (an invariant the code under test broke): prints it and traps,
/// so libFuzzer records the input.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        FileHandle.standardError.write(Data("fuzz invariant violated: \(message())\n".utf8))
        fatalError(message())
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// Runs async code to completion from the synchronous fuzzer entry point.
///
/// The task starts on this thread (`Task.immediate`) and, as the code under test does not suspend,
/// ends on it too: a task freed later on another thread would unbalance libFuzzer's malloc/free
/// count, and every input would pay for a LeakSanitizer scan.
public func runBlocking<T>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    let operation: @Sendable () async -> Void = {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    if #available(macOS 26, *) {
        Task.immediate(operation: operation)
    } else {
        Task(operation: operation)
    }
    done.wait()
    return try box.result!.get()
}

/// Fixed keys and certificates (made once with openssl; the seed corpora were made with them).
public enum Fixtures {
    /// The clock every harness uses: inside the fixtures' validity (2026-12-04 to 2126-11-10).
    public static let now = Date(timeIntervalSince1970: 1_830_000_000)

    /// `CN=Keygate Fuzz CA` (P-256); `Corpus/FuzzOCSPRequest` asks this CA, so requests reach signing.
    public static let ocspAuthority: CertificateAuthority = {
        do {
            let certificate = try Certificate(pemEncoded: ocspCAPEM)
            let signer = try SoftwareSigner(privateKey: try Certificate.PrivateKey(pemEncoded: ocspCAKeyPEM))
            return try CertificateAuthority(certificate: certificate, chain: [certificate], signer: signer)
        } catch {
            fatalError("the OCSP fixture CA does not load: \(error)")
        }
    }()

    /// `CN=Fuzz Bootstrap CA` (P-256): the trusted CA for x509 attestations in `Corpus/FuzzDeviceAPI`.
    public static let bootstrapCA: Certificate = {
        do { return try Certificate(pemEncoded: bootstrapCAPEM) } catch {
            fatalError("the bootstrap fixture CA does not load: \(error)")
        }
    }()

    static let ocspCAPEM = """
        -----BEGIN CERTIFICATE-----
        MIIBmjCCAUGgAwIBAgIUYC5kOsr7oZAPLiJF9taOEJb/IQswCgYIKoZIzj0EAwIw
        GjEYMBYGA1UEAwwPS2V5Z2F0ZSBGdXp6IENBMCAXDTI2MTIwNDE2MjYyNloYDzIx
        MjYxMTEwMTYyNjI2WjAaMRgwFgYDVQQDDA9LZXlnYXRlIEZ1enogQ0EwWTATBgcq
        hkjOPQIBBggqhkjOPQMBBwNCAASOFaZLhM997d7RFPG3S2zLYN9GDUQVB1zs4JZ7
        847Dto8BjL8t1tBF9+zwy9sTKabaDj4SWhSJ/pGKzMUDWeMOo2MwYTAdBgNVHQ4E
        FgQUyucl1N/JBep6eDgJXpcJLnNgeOcwHwYDVR0jBBgwFoAUyucl1N/JBep6eDgJ
        XpcJLnNgeOcwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZI
        zj0EAwIDRwAwRAIgCGT7RBeyGAv1pg0qtKGRv851xj8j2FLHDJTVoBYwauQCIBPL
        0hKnnII/R1s7/fFLfxsuEJxNbF0tH8bOeffQCH5O
        -----END CERTIFICATE-----
        """

    static let ocspCAKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCavdPdDNfstcYpF3
        O97RZ0CJKmvJ4RtNbYe+9RcwSFWhRANCAASOFaZLhM997d7RFPG3S2zLYN9GDUQV
        B1zs4JZ7847Dto8BjL8t1tBF9+zwy9sTKabaDj4SWhSJ/pGKzMUDWeMO
        -----END PRIVATE KEY-----
        """

    static let bootstrapCAPEM = """
        -----BEGIN CERTIFICATE-----
        MIIBoDCCAUWgAwIBAgIUYRZXubLHS4GXTdhZzUyXWKAFkCAwCgYIKoZIzj0EAwIw
        HDEaMBgGA1UEAwwRRnV6eiBCb290c3RyYXAgQ0EwIBcNMjYxMjA0MTYyNjI2WhgP
        MjEyNjExMTAxNjI2MjZaMBwxGjAYBgNVBAMMEUZ1enogQm9vdHN0cmFwIENBMFkw
        EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEms5Pk2R5tovJwu1aajv2PX2DF8l7gmJZ
        RlLVamtIGPLldQO4YuJiy5giIrJgWQvy7oEjX4wl/cd+p9AGMz+GeaNjMGEwHQYD
        VR0OBBYEFDgKG8/nxtw0/pPV2blpfRET93zMMB8GA1UdIwQYMBaAFDgKG8/nxtw0
        /pPV2blpfRET93zMMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoG
        CCqGSM49BAMCA0kAMEYCIQCkyFjHzVuHe1sSSwmfCIMS7t0n15wmyT7jk32m61Zn
        pwIhAN0HrF7XO+hv/kk0ln3K4aFQAC3dFnZ1imJt14DTumYA
        -----END CERTIFICATE-----
        """
}
