// The CSR policy (KeygatePKI/CSR): every CSR a device or an operator sends goes through
// `CSRPolicy.check` before anything is signed. The input is tried as it is (DER, or PEM text) and
// wrapped in a `CERTIFICATE REQUEST` PEM, so mutations of DER seeds also reach the PEM path.
import FuzzSupport
import KeygatePKI
import X509

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let policy = CSRPolicy()
    for candidate in [bytes, Array(PEM.encode(label: "CERTIFICATE REQUEST", der: bytes).utf8)] {
        guard let checked = try? policy.check(candidate) else { continue }
        // What issuance reads from an accepted CSR.
        fuzzCheck(checked.der.count <= candidate.count, "the checked DER is longer than the input")
        fuzzCheck(
            (try? policy.check(checked.der))?.keyAlgorithm == checked.keyAlgorithm,
            "the accepted CSR's own DER is not accepted again with the same key algorithm")
        _ = KeyAlgorithm(publicKey: checked.csr.publicKey)
        _ = checked.csr.publicKey.keygateDescription
        // A narrower allow-list must refuse (not crash) for every other algorithm.
        for algorithm in KeyAlgorithm.allCases where algorithm != checked.keyAlgorithm {
            _ = try? policy.check(candidate, allowed: [algorithm])
        }
    }
    return 0
}
