// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "keygate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "keygate", targets: ["keygate"]),
        .executable(name: "keygate-agent", targets: ["keygate-agent"]),
        .library(name: "KeygateAttestation", targets: ["KeygateAttestation"]),
        .library(name: "KeygateAgent", targets: ["KeygateAgent"]),
        .library(name: "KeygateMQTT", targets: ["KeygateMQTT"]),
        .library(name: "KeygatePKI", targets: ["KeygatePKI"]),
        .library(name: "KeygateDomain", targets: ["KeygateDomain"]),
        .library(name: "KeygateStore", targets: ["KeygateStore"]),
        .library(name: "KeygateServer", targets: ["KeygateServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.24.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.0.0"),
    ],
    targets: [
        // PKI: CAs, signers, profiles, CSR policy, issuance, CRL and OCSP encoding.
        .target(
            name: "KeygatePKI",
            dependencies: [
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Attestation: DDK (both sides), X.509 bootstrap, DPS-style symmetric keys, device API wire types.
        .target(
            name: "KeygateAttestation",
            dependencies: [
                "KeygatePKI",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // MQTT: a 3.1.1 codec over SwiftNIO, for the sandbox (server side) and the agent (client side).
        .target(
            name: "KeygateMQTT",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // HTTP: what the server's and the sandbox's listeners share (TLS setup, running in the background).
        .target(
            name: "KeygateHTTP",
            dependencies: [
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Sandbox: a local stand-in for DPS, IoT Hub, IoT Central, Key Vault and AAD.
        .target(
            name: "KeygateSandbox",
            dependencies: [
                "KeygatePKI",
                "KeygateMQTT",
                "KeygateHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Azure: clients for AAD tokens, Key Vault, the DPS service API, the IoT Hub registry and IoT Central.
        .target(
            name: "KeygateAzure",
            dependencies: [
                "KeygatePKI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The PKCS #11 header from Debian's libp11-kit-dev (never copied into the repository).
        .systemLibrary(
            name: "CPKCS11",
            pkgConfig: "p11-kit-1",
            providers: [.apt(["libp11-kit-dev"])]
        ),
        // PKCS #11: CA keys in an HSM (SoftHSM2 in tests), the module loaded with dlopen.
        .target(
            name: "KeygatePKCS11",
            dependencies: [
                "CPKCS11",
                "KeygatePKI",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Domain: records, audit events, lifecycle vocabulary. No I/O.
        .target(
            name: "KeygateDomain",
            dependencies: ["KeygatePKI"],
            swiftSettings: swiftSettings
        ),
        // Store: persistence protocols, the shared SQL, and its two backends: SQLite (GRDB, WAL) and PostgreSQL (postgres-nio).
        .target(
            name: "KeygateStore",
            dependencies: [
                "KeygateDomain",
                "KeygatePKI",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Server: the Hummingbird application and the long-running services.
        .target(
            name: "KeygateServer",
            dependencies: [
                "KeygatePKI",
                "KeygateHTTP",
                "KeygateAttestation",
                "KeygateAzure",
                "KeygatePKCS11",
                "KeygateDomain",
                "KeygateStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/openapi.yaml"), .copy("Resources/ui")],
            swiftSettings: swiftSettings
        ),
        // CLI: the `keygate` commands, as a library so tests can drive them.
        .target(
            name: "KeygateCLI",
            dependencies: [
                "KeygatePKI",
                "KeygateHTTP",
                "KeygateAgent",
                "KeygateMQTT",
                "KeygatePKCS11",
                "KeygateAzure",
                "KeygateSandbox",
                "KeygateAttestation",
                "KeygateDomain",
                "KeygateStore",
                "KeygateServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keygate",
            dependencies: ["KeygateCLI"],
            swiftSettings: swiftSettings
        ),
        // Agent: what runs on a device. Never the server, the store or Hummingbird.
        .target(
            name: "KeygateAgent",
            dependencies: [
                "KeygatePKI",
                "KeygateAttestation",
                "KeygateMQTT",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keygate-agent",
            dependencies: ["KeygateAgent"],
            swiftSettings: swiftSettings
        ),

        // Shared test fixtures: temporary folders, a test CA, outside tools.
        .target(
            name: "KeygateTestSupport",
            dependencies: [
                "KeygatePKI",
                "KeygateHTTP",
                "KeygateDomain",
                "KeygateStore",
                "KeygateServer",
                "KeygateAttestation",
                "KeygateSandbox",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Tests/KeygateTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygatePKITests",
            dependencies: [
                "KeygatePKI", "KeygateTestSupport",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateAttestationTests",
            dependencies: [
                "KeygateAttestation", "KeygatePKI", "KeygateTestSupport",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateAgentTests",
            dependencies: [
                "KeygateAgent", "KeygateAttestation", "KeygateServer", "KeygateStore", "KeygateDomain", "KeygatePKI",
                "KeygateTestSupport", "KeygateSandbox", "KeygateMQTT",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateMQTTTests",
            dependencies: [
                "KeygateMQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateSandboxTests",
            dependencies: [
                "KeygateSandbox", "KeygatePKI", "KeygateAzure", "KeygateMQTT", "KeygateAgent", "KeygateTestSupport",
                "KeygateServer", "KeygateDomain",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateAzureTests",
            dependencies: [
                "KeygateAzure", "KeygateSandbox", "KeygatePKI", "KeygateServer", "KeygateStore", "KeygateDomain",
                "KeygateTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygatePKCS11Tests",
            dependencies: [
                "KeygatePKCS11", "KeygatePKI", "KeygateServer", "KeygateStore", "KeygateDomain", "KeygateTestSupport",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateDomainTests",
            dependencies: ["KeygateDomain", "KeygateTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateStoreTests",
            dependencies: ["KeygateStore", "KeygateDomain", "KeygatePKI", "KeygateTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateServerTests",
            dependencies: [
                "KeygateServer", "KeygateStore", "KeygateDomain", "KeygatePKI", "KeygateAttestation", "KeygateSandbox",
                "KeygateHTTP", "KeygateTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeygateCLITests",
            dependencies: [
                "KeygateCLI", "KeygateServer", "KeygateStore", "KeygatePKI", "KeygateTestSupport",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
