import ArgumentParser
import Foundation
import KeygateServer

struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca", abstract: "Inspect the certificate authority.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the root and issuing CA, where their keys live, the CRL and certificate counts.")

        @OptionGroup var connection: AdminConnectionOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let info = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get("/admin/v1/ca", as: CAInfoBody.self)
                }
            }
            if json { return try printJSON(info) }
            for (label, ca) in [("Root CA", info.root), ("Issuing CA", info.issuing)] {
                print("\(label): \(ca.subject)")
                print("  serial       \(ca.serial)")
                print("  valid        \(format(ca.notBefore)) .. \(format(ca.notAfter))")
                print("  key          \(ca.keyAlgorithm), \(ca.keyStore): \(ca.keyLocation)")
                print("  sha256       \(ca.sha256Fingerprint)")
            }
            print(
                "CRL #\(info.crl.number): \(info.crl.entries) entries, next update \(format(info.crl.nextUpdate))  \(info.crlURL)"
            )
            print("OCSP: \(info.ocspURL)")
            let counts = info.certificates.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }
            print("Certificates: \(counts.isEmpty ? "none" : counts.joined(separator: ", "))")
        }
    }
}
