import Foundation
import KeygateAttestation
import KeygatePKI

/// The allowlist CSV: `deviceId,group[,pinnedKey][,token]` with a header line.
public enum AllowlistCSV {
    /// One parsed row and its line number in the file (the header is line 1).
    public struct Row: Sendable {
        /// The row's line in the file.
        public var line: Int
        /// The row, as the import takes it.
        public var row: AllowlistImportRequest.Row
    }

    /// Parses the file: the rows, the problems by line, or why the whole file is refused.
    public static func parse(_ text: String) -> (rows: [Row], problems: [(Int, String)], fatal: String?) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let header = lines.first else { return ([], [], "the file is empty") }
        let columns = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard columns.count >= 2, columns[0] == "deviceId", columns[1] == "group",
            Set(columns.dropFirst(2)).isSubset(of: ["pinnedKey", "token"])
        else {
            return ([], [], "the header must be deviceId,group[,pinnedKey][,token]; found '\(header)'")
        }
        var rows: [Row] = []
        var problems: [(Int, String)] = []
        var seen = Set<String>()
        for (offset, line) in lines.enumerated().dropFirst() {
            let number = offset + 1
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            guard fields.count == columns.count else {
                problems.append((number, "expected \(columns.count) fields, found \(fields.count)"))
                continue
            }
            var values: [String: String] = [:]
            for (name, value) in zip(columns, fields) where !value.isEmpty { values[name] = value }
            guard let id = values["deviceId"], isValidDeviceID(id) else {
                problems.append((number, "invalid device ID '\(fields[0])' (1 to 128 letters, digits and : . _ -)"))
                continue
            }
            guard let group = values["group"] else {
                problems.append((number, "no group"))
                continue
            }
            guard seen.insert(id).inserted else {
                problems.append((number, "\(id) appears more than once"))
                continue
            }
            if let key = values["pinnedKey"], !(Base64URL.decode(key).map(DDKProtocol.isValidPublicKey) ?? false) {
                problems.append((number, "pinnedKey is not a P-256 public key in base64url"))
                continue
            }
            rows.append(
                Row(
                    line: number,
                    row: .init(deviceId: id, group: group, pinnedKey: values["pinnedKey"], token: values["token"])))
        }
        return (rows, problems, nil)
    }

    /// 1 to 128 letters, digits and `: . _ -`.
    public static func isValidDeviceID(_ id: String) -> Bool {
        guard !id.isEmpty, id.count <= 128 else { return false }
        return id.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || ":._-".unicodeScalars.contains($0)
        }
    }
}
