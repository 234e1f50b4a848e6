public import ArgumentParser

/// `keygate`: the server, its administration, the benchmarks.
public struct KeygateCommand: AsyncParsableCommand {
    /// The command name, help text, version and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "keygate",
        abstract: "Keygate: device identities for IoT fleets, from allowlist to Azure IoT Hub.",
        discussion: """
            Start with `keygate init --data-dir DIR`, then `keygate serve --data-dir DIR`.
            Admin commands find the server through --data-dir (same host) or --server, --token and --ca-cert
            (or KEYGATE_SERVER, KEYGATE_TOKEN, KEYGATE_CA_CERT).
            """,
        version: KeygateVersion.current,
        subcommands: [
            DemoCommand.self, InitCommand.self, ServeCommand.self, CACommand.self, CertCommand.self, GroupCommand.self,
            AllowlistCommand.self, DeviceCommand.self, AuditCommand.self, SandboxCommand.self, ConnectorCommand.self,
            OutboxCommand.self, TokenCommand.self, NodeCommand.self, DatabaseCommand.self, BenchCommand.self,
        ]
    )

    /// Creates the command; ArgumentParser fills it from the command line.
    public init() {}
}

/// The version of Keygate, as `keygate --version` prints it.
public enum KeygateVersion {
    /// The current version (semantic versioning).
    public static let current = "0.1.0"
}

/// The entry point of the `keygate` executable.
public enum KeygateMain {
    /// Parses the command line and runs the chosen subcommand; exits the process on failure.
    public static func run() async {
        await KeygateCommand.main()
    }
}
