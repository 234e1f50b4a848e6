import Foundation
public import KeygateAttestation

/// Reads the attributes a DDK identity is derived from.
///
/// The Linux collector reads what exists and is readable: `/etc/machine-id`, the MAC address of each
/// physical network interface, DMI identifiers, the CPU serial. `--attribute name=value` adds or
/// overrides (simulated devices use only those).
public struct AttributeCollector: Sendable {
    /// A folder prefixed to every path read (`""`: the real filesystem).
    public var root: String

    /// `root` lets tests point the collector at a fake filesystem.
    public init(root: String = "") {
        self.root = root
    }

    /// The Linux attributes found on this machine, by name.
    public func linux() -> [String: String] {
        var found: [String: String] = [:]
        if let id = read("/etc/machine-id") { found["machine-id"] = id }
        let netPath = root + "/sys/class/net"
        for interface in (try? FileManager.default.contentsOfDirectory(atPath: netPath))?.sorted() ?? []
        where interface != "lo" {
            // Physical interfaces have a device link; virtual ones (docker0, veth...) change too often.
            guard FileManager.default.fileExists(atPath: "\(netPath)/\(interface)/device"),
                let mac = read("/sys/class/net/\(interface)/address"), mac != "00:00:00:00:00:00"
            else { continue }
            found["mac:\(interface)"] = mac
        }
        for name in ["product_uuid", "board_serial", "product_serial", "chassis_serial"] {
            if let value = read("/sys/class/dmi/id/\(name)"), !value.isEmpty, value != "None",
                !value.hasPrefix("To be filled")
            {
                found["dmi:\(name)"] = value
            }
        }
        if let cpuinfo = read("/proc/cpuinfo") {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix("Serial") {
                if let value = line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces), !value.isEmpty {
                    found["cpu:serial"] = value
                }
            }
        }
        return found
    }

    private func read(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: root + path) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    /// Combines collected attributes with `name=value` overrides.
    public static func merge(collected: [String: String], overrides: [String]) throws -> DDKAttributes {
        var values = collected
        for item in overrides {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw AgentError("--attribute takes name=value, got '\(item)'")
            }
            values[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        guard !values.isEmpty else {
            throw AgentError(
                "no attributes: give --attribute name=value or --attributes linux on a machine that has some")
        }
        return DDKAttributes(strings: values)
    }
}

/// A message for the user of the agent.
public struct AgentError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as a sentence for the user.
    public var description: String
    /// A short machine-readable reason (such as `unreachable`); `nil`: none.
    public var code: String?

    /// Creates an error with a message and an optional code.
    public init(_ description: String, code: String? = nil) {
        self.description = description
        self.code = code
    }
}
