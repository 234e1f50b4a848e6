import ArgumentParser
import Foundation
import KeygatePKI
import KeygateServer

/// How an admin command reaches the API: `--data-dir` on the server's host, or explicit
/// `--server`, `--token`, `--ca-cert` (environment: KEYGATE_SERVER, KEYGATE_TOKEN, KEYGATE_CA_CERT).
struct AdminConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "Data folder of a server on this host (gives URL, token and CA).")
    var dataDir: String?

    @Option(name: .long, help: "Admin API URL, e.g. https://keygate.example:8443 (env KEYGATE_SERVER).")
    var server: String?

    @Option(name: .long, help: "Admin token (env KEYGATE_TOKEN).")
    var token: String?

    @Option(name: .long, help: "PEM file with the CA that signed the server's certificate (env KEYGATE_CA_CERT).")
    var caCert: String?

    func resolve() throws -> AdminClient.Target {
        let environment = ProcessInfo.processInfo.environment
        var url = server ?? environment["KEYGATE_SERVER"]
        var token = self.token ?? environment["KEYGATE_TOKEN"]
        var caFile = caCert ?? environment["KEYGATE_CA_CERT"]
        if let dataDir {
            let directory = DataDirectory(path: dataDir)
            let configuration = try directory.loadConfiguration()
            url = url ?? configuration.adminURL
            if token == nil {
                token = try? directory.read(DataDirectory.adminTokenFile).trimmingCharacters(
                    in: .whitespacesAndNewlines)
            }
            caFile = caFile ?? directory.path(configuration.root.certificate)
        }
        guard let url else {
            throw ValidationError("no server given: use --data-dir, or --server (or KEYGATE_SERVER)")
        }
        guard let token, !token.isEmpty else {
            throw ValidationError("no admin token: use --data-dir, or --token (or KEYGATE_TOKEN)")
        }
        return AdminClient.Target(baseURL: url, token: token, caCertificateFile: caFile)
    }
}
