// The OCSP request parser (KeygatePKI/OCSP), which reads unauthenticated POST bodies and GET paths
// on the /pki listener, and the responder behind it. The seed requests ask `Fixtures.ocspAuthority`,
// so mutations of them reach signing and the nonce echo.
import Foundation
import FuzzSupport
import KeygatePKI
import SwiftASN1
import X509

private let responder: OCSPResponder = {
    do { return try OCSPResponder(authority: Fixtures.ocspAuthority) } catch {
        fatalError("the OCSP responder does not start: \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    if let request = try? OCSPRequest(derBytes: bytes) {
        fuzzCheck(
            (1...OCSPRequest.maximumCertIDs).contains(request.certIDs.count), "an accepted request has no certIDs")
        fuzzCheck((request.nonceExtensionValue?.count ?? 0) <= 128, "an accepted nonce is longer than 128 bytes")
        // Re-encoding the CertIDs (what a device sends) must give the same CertIDs back.
        let again = try? OCSPRequest(derBytes: OCSPRequest.encode(request.certIDs))
        fuzzCheck(again?.certIDs == request.certIDs, "the re-encoded request does not parse to the same CertIDs")
        for id in request.certIDs {
            _ = responder.isIssuedByThisCA(id)
            _ = id.serialNumber.description
        }
    }
    // The responder never throws: every input gets a DER OCSPResponse.
    let response = try? runBlocking {
        await responder.respond(to: bytes, now: Fixtures.now) { serial in
            switch Array(serial.bytes).last.map({ $0 % 4 }) {
            case 0: return .good
            case 1: return .revoked(at: Fixtures.now - 86_400, reason: .keyCompromise)
            case 2: return .unknown
            default: throw CancellationError()  // a store failure: tryLater
            }
        }
    }
    fuzzCheck(response != nil, "respond(to:) did not finish")
    if let response {
        fuzzCheck((try? DER.parse(response)) != nil, "the OCSP response is not DER")
    }
    return 0
}
