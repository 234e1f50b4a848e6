import Foundation
import KeygateTestSupport
import Testing

/// The agent runs on small devices: its product must not pull in the server, the store or Hummingbird.
@Suite struct AgentIsolationTests {
    /// Reads `swift package describe --type json`, written by scripts/test.sh before `swift test`
    /// (SwiftPM cannot describe the package while `swift test` holds the build folder).
    @Test func theAgentDoesNotDependOnServerModules() throws {
        let path = packageRoot + "/.build/package-description.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            if ExternalTool.toolsRequired { Issue.record("\(path) is missing; scripts/test.sh writes it") }
            return
        }
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let targets = try #require(json["targets"] as? [[String: Any]])
        var byName: [String: [String: Any]] = [:]
        for target in targets { if let name = target["name"] as? String { byName[name] = target } }
        var closure = Set<String>()
        var products = Set<String>()
        var pending = ["keygate-agent"]
        while let name = pending.popLast() {
            guard closure.insert(name).inserted, let target = byName[name] else { continue }
            pending += target["target_dependencies"] as? [String] ?? []
            products.formUnion(target["product_dependencies"] as? [String] ?? [])
        }
        #expect(closure.contains("KeygateAgent") && closure.contains("KeygateAttestation"))
        for forbidden in ["KeygateServer", "KeygateStore", "KeygateCLI", "KeygateDomain"] {
            #expect(!closure.contains(forbidden), "keygate-agent must not depend on \(forbidden)")
        }
        for forbidden in ["Hummingbird", "HummingbirdTLS", "HummingbirdAuth", "GRDB"] {
            #expect(!products.contains(forbidden), "keygate-agent must not depend on \(forbidden)")
        }
    }
}
