public import AsyncHTTPClient
import Foundation
import NIOSSL
public import Testing

extension Tag {
    /// Runs Keygate's own binaries (`keygate`, `keygate-agent`) as processes.
    @Tag public static var binary: Self
    /// Checks with a tool outside Swift: openssl, pkilint, SoftHSM, Microsoft's Python SDKs.
    @Tag public static var outsideTool: Self
    /// Takes more than a few seconds (many devices, waits for timers, whole flows).
    @Tag public static var slow: Self
}

/// Whether this is the inner-loop run (`scripts/test.sh --fast`, which sets `KEYGATE_FAST_TESTS=1`).
public enum TestRun {
    public static var isFast: Bool { ProcessInfo.processInfo.environment["KEYGATE_FAST_TESTS"] == "1" }
}

extension Trait where Self == ConditionTrait {
    /// Leaves the test (or suite) out of `scripts/test.sh --fast`; the full run and CI keep it.
    public static var fullRunOnly: Self {
        .disabled(if: TestRun.isFast, "left out of the fast run (scripts/test.sh --fast)")
    }
}

extension HTTPClient {
    /// A client that trusts the CA certificate in `rootPath` (PEM), for talking to a test server.
    public static func trusting(_ rootPath: String) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(rootPath)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
    }
}
