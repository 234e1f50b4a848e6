// PEM and base64 helpers (KeygatePKI/Encoding): `PEM.blocks`, `Base64URL`, `Hex` and the EST body
// decoder read text from devices, operators and Azure. The input is decoded as text by each, and
// used as bytes for encode/decode round trips.
import FuzzSupport
import KeygatePKI

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let text = String(decoding: bytes, as: UTF8.self)

    // Decoding arbitrary text.
    let blocks = PEM.blocks(in: text)
    for label in ["CERTIFICATE", "CERTIFICATE REQUEST", "PRIVATE KEY"] {
        fuzzCheck(PEM.blocks(in: text, label: label).count <= blocks.count, "a label filter found more blocks")
    }
    if let decoded = Base64URL.decode(text) {
        fuzzCheck(Base64URL.decode(Base64URL.encode(decoded)) == decoded, "base64url does not round-trip")
    }
    if let decoded = Hex.decode(text) {
        fuzzCheck(Hex.decode(Hex.encode(decoded, uppercase: true)) == decoded, "hex does not round-trip")
    }
    _ = ESTMessages.decodeBase64Body(bytes)

    // Encoding the input as bytes, then decoding it.
    fuzzCheck(Base64URL.decode(Base64URL.encode(bytes)) == bytes, "base64url does not round-trip the input")
    fuzzCheck(Hex.decode(Hex.encode(bytes)) == bytes, "hex does not round-trip the input")
    let pem = PEM.encode(label: "CERTIFICATE", der: bytes)
    fuzzCheck(PEM.blocks(in: pem) == [bytes], "PEM.encode then PEM.blocks does not give the input back")
    fuzzCheck(PEM.blocks(in: pem + pem, label: "CERTIFICATE") == [bytes, bytes], "two PEM blocks do not come back")
    if !bytes.isEmpty {
        fuzzCheck(
            ESTMessages.decodeBase64Body(Array(ESTMessages.base64Body(bytes).utf8)) == bytes,
            "an EST base64 body does not round-trip")
        fuzzCheck(
            ESTMessages.decodeBase64Body(Array(pem.utf8)) == bytes, "an EST body in PEM armour does not round-trip")
    }
    return 0
}
