import Foundation
import KeygateAgent
import KeygateAttestation
import KeygateTestSupport
import Testing

@Suite struct AttributeCollectorTests {
    /// A fake Linux filesystem: the collector reads what exists and skips virtual interfaces.
    @Test func theLinuxCollectorReadsWhatExists() throws {
        let root = try TemporaryDirectory("attrs")
        let fm = FileManager.default
        func write(_ path: String, _ text: String) throws {
            let full = root.path + path
            try fm.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        }
        try write("/etc/machine-id", "0123456789abcdef\n")
        try write("/sys/class/net/eth0/address", "02:42:ac:11:00:02\n")
        try fm.createDirectory(atPath: root.path + "/sys/class/net/eth0/device", withIntermediateDirectories: true)
        try write("/sys/class/net/docker0/address", "02:42:00:00:00:01\n")  // virtual: no device link
        try write("/sys/class/net/lo/address", "00:00:00:00:00:00\n")
        try write("/sys/class/dmi/id/board_serial", "BS-42\n")
        try write("/sys/class/dmi/id/product_serial", "To be filled by O.E.M.\n")
        try write("/proc/cpuinfo", "processor\t: 0\nSerial\t\t: 00000000abcdef01\n")
        let found = AttributeCollector(root: root.path).linux()
        #expect(
            found == [
                "machine-id": "0123456789abcdef", "mac:eth0": "02:42:ac:11:00:02", "dmi:board_serial": "BS-42",
                "cpu:serial": "00000000abcdef01",
            ])
        let merged = try AttributeCollector.merge(collected: found, overrides: ["mac:eth0=override", "site=plant-3"])
        #expect(merged.values["mac:eth0"] == Array("override".utf8))
        #expect(merged.names.contains("site"))
        #expect(throws: AgentError.self) { try AttributeCollector.merge(collected: [:], overrides: ["novalue"]) }
        #expect(throws: AgentError.self) { try AttributeCollector.merge(collected: [:], overrides: []) }
    }
}
