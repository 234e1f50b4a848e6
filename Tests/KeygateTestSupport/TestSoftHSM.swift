import Foundation
import Testing

/// A SoftHSM2 configuration with its own token folder and initialised tokens.
///
/// PKCS #11 is initialised once per process and SoftHSM reads `SOFTHSM2_CONF` then, so tests in
/// this process share ``shared``; subprocesses (`keygate init`, `keygate serve`) get their own
/// configuration through ``environment``.
public struct TestSoftHSM: Sendable {
    public static let module = "/usr/lib/softhsm/libsofthsm2.so"
    public static let userPIN = "4321"
    public static let securityOfficerPIN = "87654321"

    /// The configuration file (`SOFTHSM2_CONF`).
    public let configuration: String
    /// The folder holding the tokens.
    public let tokenDirectory: String
    /// A file holding the user PIN.
    public let pinFile: String

    public var environment: [String: String] { ["SOFTHSM2_CONF": configuration] }

    /// Writes a configuration under `folder` and initialises one token per label.
    public static func make(in folder: String, tokens: [String]) throws -> TestSoftHSM {
        let tokenDirectory = folder + "/tokens"
        try FileManager.default.createDirectory(atPath: tokenDirectory, withIntermediateDirectories: true)
        let configuration = folder + "/softhsm2.conf"
        try Data(
            """
            directories.tokendir = \(tokenDirectory)
            objectstore.backend = file
            log.level = ERROR
            slots.removable = false

            """.utf8
        ).write(to: URL(fileURLWithPath: configuration))
        let pinFile = folder + "/pin"
        try Data((userPIN + "\n").utf8).write(to: URL(fileURLWithPath: pinFile))
        let hsm = TestSoftHSM(configuration: configuration, tokenDirectory: tokenDirectory, pinFile: pinFile)
        let util = try ExternalTool.require("softhsm2-util")
        for label in tokens {
            let output = try util.run(
                [
                    "--init-token", "--free", "--label", label, "--pin", userPIN, "--so-pin", securityOfficerPIN,
                ], environment: hsm.environment)
            guard output.status == 0 else { throw ToolFailed(tool: "softhsm2-util", output: output.combined) }
        }
        return hsm
    }

    /// The process's SoftHSM, with tokens `keygate-test` and `keygate-other`; `nil` when SoftHSM2 is
    /// not installed (a test then skips, or fails under KEYGATE_REQUIRE_TOOLS=1).
    public static let shared: TestSoftHSM? = {
        guard FileManager.default.fileExists(atPath: module), ExternalTool.find("softhsm2-util") != nil else {
            return nil
        }
        let folder = NSTemporaryDirectory() + "keygate-softhsm-" + UUID().uuidString
        guard (try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)) != nil,
            let hsm = try? make(in: folder, tokens: ["keygate-test", "keygate-other"])
        else { return nil }
        setenv("SOFTHSM2_CONF", hsm.configuration, 1)
        return hsm
    }()

    /// Whether SoftHSM2 can be used here (records an issue when tools are required but missing).
    public static var available: Bool {
        guard ExternalTool.available("softhsm2-util") else { return false }
        if shared == nil && ExternalTool.toolsRequired {
            Issue.record("SoftHSM2 is required (KEYGATE_REQUIRE_TOOLS=1) but \(module) cannot be used")
        }
        return shared != nil
    }
}

public struct ToolFailed: Error, CustomStringConvertible {
    public var tool: String
    public var output: String
    public var description: String { "\(tool) failed: \(output)" }
}
