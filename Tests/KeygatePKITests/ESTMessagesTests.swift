import Foundation
import KeygatePKI
import Testing

/// The base64 EST bodies travel in (RFC 8951 §3.1): any line breaks, or none, or a PEM armour.
@Suite struct ESTMessagesTests {
    let der: [UInt8] = Array(0...255) + Array(repeating: 0x30, count: 40)

    @Test func requestBodiesDecodeWhateverTheirLineBreaks() {
        let plain = Data(der).base64EncodedString()
        let crlf = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        let lf = Data(der).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
        let pem = PEM.encode(label: "CERTIFICATE REQUEST", der: der)
        for body in [plain, crlf + "\r\n", lf + "\n", "  " + crlf + "\r\n\r\n", pem] {
            #expect(ESTMessages.decodeBase64Body(Array(body.utf8)) == der, "\(body.prefix(20))")
        }
        for bad in ["", "\r\n", "not base64!", "QUJD*"] {
            #expect(ESTMessages.decodeBase64Body(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func answersAreBase64InLinesOf64WithCRLF() {
        let body = ESTMessages.base64Body(der)
        let lines = body.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(lines.dropLast().allSatisfy { $0.count == 64 } && body.hasSuffix("\r\n"))
        #expect(ESTMessages.decodeBase64Body(Array(body.utf8)) == der)
    }
}
