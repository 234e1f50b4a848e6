import ArgumentParser
import Foundation
import KeygatePKI
import KeygateServer

struct CertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert", abstract: "Issue, revoke and inspect certificates.",
        subcommands: [Sign.self, Revoke.self, List.self, Show.self])

    struct Sign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a CSR and print the certificate chain (leaf, issuing CA, root).",
            discussion: """
                Only the CSR's public key is used. The subject and names come from the options:
                the CSR cannot choose its own identity.
                """)

        @OptionGroup var connection: AdminConnectionOptions
        @Option(name: .long, help: "The CSR file (PEM or DER).") var csr: String
        @Option(name: .long, help: "Certificate profile: device (default) or server.") var profile: String = "device"
        @Option(name: .long, help: "The subject common name (for a device: its device ID).") var subjectCn: String
        @Option(name: .long, parsing: .singleValue, help: "A DNS name for the SAN (repeatable).") var dns: [String] = []
        @Option(name: .long, parsing: .singleValue, help: "An IP address for the SAN (repeatable).") var ip: [String] =
            []
        @Option(name: .long, help: "Validity in days (default: the profile's).") var validityDays: Int?
        @Option(name: .long, help: "Write the chain to this file instead of standard output.") var out: String?

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: csr) else {
                throw ValidationError("cannot read the CSR file \(csr)")
            }
            let text: String
            if data.starts(with: Array("-----BEGIN".utf8)) {
                text = String(decoding: data, as: UTF8.self)
            } else {
                text =
                    "-----BEGIN CERTIFICATE REQUEST-----\n"
                    + data.base64EncodedString(options: .lineLength64Characters).replacingOccurrences(
                        of: "\r\n", with: "\n")
                    + "\n-----END CERTIFICATE REQUEST-----\n"
            }
            let body = IssueBody(
                csr: text, profile: profile,
                subject: .init(
                    commonName: subjectCn, dnsNames: dns.isEmpty ? nil : dns, ipAddresses: ip.isEmpty ? nil : ip),
                validityDays: validityDays)
            let issued = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.post("/admin/v1/certificates", body: body, as: CertificateBody.self)
                }
            }
            let chain = issued.chain ?? issued.certificate
            if let out {
                try Data(chain.utf8).write(to: URL(fileURLWithPath: out))
                FileHandle.standardError.write(Data("Issued \(issued.serial) for \(issued.subject) into \(out)\n".utf8))
            } else {
                print(chain, terminator: chain.hasSuffix("\n") ? "" : "\n")
                FileHandle.standardError.write(Data("Issued \(issued.serial) for \(issued.subject)\n".utf8))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a certificate; the CRL and OCSP reflect it at once.",
            discussion:
                "Reasons: \(RevocationReason.allCases.filter(\.isAllowedForEndEntity).map(\.name).joined(separator: ", "))."
        )

        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The serial number (hex, colons allowed).") var serial: String
        @Option(name: .long, help: "The revocation reason.") var reason: String = "unspecified"

        func run() async throws {
            let record = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.post(
                        "/admin/v1/certificates/\(serial.replacingOccurrences(of: ":", with: ""))/revoke",
                        body: RevokeBody(reason: reason), as: CertificateBody.self)
                }
            }
            print(
                "Revoked \(record.serial) (\(record.subject)): \(record.revocationReason ?? reason), status \(record.status)"
            )
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List certificates, oldest first.")

        @OptionGroup var connection: AdminConnectionOptions
        @Option(name: .long, help: "Only this status: active, revoked, onHold.") var status: String?
        @Option(name: .long, help: "Only this profile.") var profile: String?
        @Option(name: .long, help: "Only certificates expiring within this time, e.g. 7d or 12h.") var expiring: String?
        @Option(name: .long, help: "At most this many (1-1000).") var limit: Int = 100
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let status { query.append("status=\(status)") }
            if let profile { query.append("profile=\(profile)") }
            if let expiring { query.append("expiringWithin=\(expiring)") }
            let list = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get(
                        "/admin/v1/certificates?" + query.joined(separator: "&"), as: CertificateListBody.self)
                }
            }
            if json { return try printJSON(list) }
            print(pad("SERIAL", 42) + pad("STATUS", 9) + pad("PROFILE", 8) + pad("NOT AFTER", 22) + "SUBJECT")
            for c in list.certificates {
                print(
                    pad(c.serial, 42) + pad(c.status, 9) + pad(c.profile, 8) + pad(format(c.notAfter), 22) + c.subject)
            }
            if list.certificates.isEmpty { print("(none)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one certificate.")

        @OptionGroup var connection: AdminConnectionOptions
        @Argument(help: "The serial number (hex).") var serial: String
        @Flag(help: "Print only the PEM.") var pem = false
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            let c = try await runReportingErrors {
                try await AdminClient.with(try connection.resolve()) {
                    try await $0.get(
                        "/admin/v1/certificates/\(serial.replacingOccurrences(of: ":", with: ""))",
                        as: CertificateBody.self)
                }
            }
            if json { return try printJSON(c) }
            if pem { return print(c.certificate, terminator: "") }
            print("Serial      \(c.serial)")
            print("Subject     \(c.subject)")
            print("Issuer      \(c.issuer)")
            print("Profile     \(c.profile)")
            print("Status      \(c.status)\(c.revocationReason.map { " (\($0) at \(format(c.revokedAt!)))" } ?? "")")
            print("Valid       \(format(c.notBefore)) .. \(format(c.notAfter))")
            if let device = c.deviceId { print("Device      \(device)") }
            print(c.certificate, terminator: "")
        }
    }
}
