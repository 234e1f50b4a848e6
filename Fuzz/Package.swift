// swift-tools-version:6.1
// libFuzzer harnesses for Keygate's parsers, one executable per fuzzer. A package of its own so the
// main `swift build` never sees `-sanitize=fuzzer`; build and run them with `scripts/fuzz.sh`.
import PackageDescription

let pki = Target.Dependency.product(name: "KeygatePKI", package: "keygate")
let attestation = Target.Dependency.product(name: "KeygateAttestation", package: "keygate")
let mqtt = Target.Dependency.product(name: "KeygateMQTT", package: "keygate")
let asn1 = Target.Dependency.product(name: "SwiftASN1", package: "swift-asn1")
let x509 = Target.Dependency.product(name: "X509", package: "swift-certificates")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")

/// A libFuzzer target: `LLVMFuzzerTestOneInput` in a file of its own, no `main` (built with `-parse-as-library`).
func fuzzer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies)
}

let package = Package(
    name: "keygate-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "keygate", path: ".."),
        // The root package's constraints, so both resolve to the same versions.
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
    ],
    targets: [
        // What the harnesses share: fixed keys and certificates, running async code to completion.
        .target(name: "FuzzSupport", dependencies: [pki, x509]),
        fuzzer("FuzzCSR", [pki, x509]),
        fuzzer("FuzzOCSPRequest", [pki, asn1, x509]),
        fuzzer(
            "FuzzMQTT",
            [
                mqtt, .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        fuzzer("FuzzDeviceAPI", [attestation, pki, x509, crypto]),
        fuzzer("FuzzPEM", [pki]),
        fuzzer("FuzzPKCS8", [pki, asn1, x509]),
    ]
)
