import Foundation
import Hummingbird
import HummingbirdTesting
import KeygateDomain
import KeygatePKI
import KeygateServer
import KeygateStore
import KeygateTestSupport
import NIOCore
import Testing

/// The dashboard through Hummingbird's router test client: sessions, CSRF, roles, escaping, pages.
/// (`scripts/browser-test.sh` drives the same pages in Chromium.)
@Suite struct DashboardTests {
    struct Session {
        var cookie: String
        var csrf: String
        var headers: HTTPFields { [.cookie: "keygate_session=\(cookie)"] }
        func form(_ fields: [String: String], csrf: Bool = true) -> (HTTPFields, ByteBuffer) {
            var fields = fields
            if csrf { fields["csrf"] = self.csrf }
            var headers = self.headers
            headers[.contentType] = "application/x-www-form-urlencoded"
            let body = fields.sorted { $0.key < $1.key }.map {
                "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            }.joined(separator: "&")
            return (headers, ByteBuffer(string: body))
        }
    }

    func withApp(_ test: @escaping @Sendable (any TestClientProtocol, TestKeygate) async throws -> Void) async throws {
        let kg = try await TestKeygate.make()
        let app = Application(router: try kg.server.httpsRouter())
        try await app.test(.router) { client in try await test(client, kg) }
    }

    /// Group `fleet` and one allowlisted device, `dev-1`; answers the fleet service.
    func seedDevice(_ kg: TestKeygate) async throws -> FleetService {
        let fleet = kg.server.services.fleet
        _ = try await fleet.createGroup(GroupRequest(name: "fleet"), actor: "test")
        _ = try await fleet.importAllowlist(
            AllowlistImportRequest(entries: [.init(deviceId: "dev-1", group: "fleet", token: "enrollment-token-0123456789")]),
            actor: "test")
        return fleet
    }

    func signIn(_ client: any TestClientProtocol, token: String) async throws -> Session {
        let cookie = try await client.execute(
            uri: "/ui/signin", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(string: "token=\(token)")
        ) { response -> String in
            #expect(response.status == .seeOther)
            let header = try #require(response.headers[.setCookie])
            return String(header.split(separator: ";")[0].dropFirst("keygate_session=".count))
        }
        let page = try await client.execute(uri: "/ui/", method: .get, headers: [.cookie: "keygate_session=\(cookie)"]) {
            String(buffer: $0.body)
        }
        let csrf = try #require(page.firstMatch(of: /name="csrf" value="([^"]+)"/)?.1)
        return Session(cookie: cookie, csrf: String(csrf))
    }

    func page(_ client: any TestClientProtocol, _ session: Session, _ uri: String) async throws -> (HTTPResponse.Status, String)
    {
        try await client.execute(uri: uri, method: .get, headers: session.headers) { ($0.status, String(buffer: $0.body)) }
    }

    @Test func signInSetsAHardenedCookieAndRefusesAWrongToken() async throws {
        try await withApp { client, kg in
            try await client.execute(
                uri: "/ui/signin", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=kg_wrong")
            ) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.setCookie] == nil)
                #expect(String(buffer: response.body).contains("Sign-in refused"))
            }
            try await client.execute(
                uri: "/ui/signin", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=\(kg.adminToken)")
            ) { response in
                #expect(response.status == .seeOther)
                let cookie = try #require(response.headers[.setCookie])
                for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
                    #expect(cookie.contains(attribute), "\(attribute) in \(cookie)")
                }
            }
        }
    }

    @Test func anAddressThatGuessesTokensIsHeldOff() async throws {
        try await withApp { client, kg in
            for attempt in 0..<11 {
                try await client.execute(
                    uri: "/ui/signin", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "token=kg_guess\(attempt)")
                ) { #expect($0.status == (attempt < 10 ? .unauthorized : .tooManyRequests)) }
            }
            // Held off even with the right token, for a while: the guesses are not told apart from it.
            try await client.execute(
                uri: "/ui/signin", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=\(kg.adminToken)")
            ) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] != nil)
                #expect(response.headers[.setCookie] == nil)
            }
        }
    }

    @Test func everyPageNeedsASession() async throws {
        try await withApp { client, _ in
            for path in ["/ui/", "/ui/devices", "/ui/devices/x", "/ui/groups", "/ui/allowlist", "/ui/connectors",
                "/ui/certificates", "/ui/rotations", "/ui/audit"]
            {
                try await client.execute(uri: path, method: .get, headers: [.cookie: "keygate_session=forged-value-0123456789"]) {
                    #expect($0.status == .seeOther, "\(path)")
                    #expect($0.headers[.location] == "/ui/signin")
                }
            }
            try await client.execute(
                uri: "/ui/devices/x/quarantine", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "reason=x")
            ) { #expect($0.status == .unauthorized) }
        }
    }

    @Test func actionsNeedTheSessionsCSRFTokenAndAreAuditedWithTheTokenName() async throws {
        try await withApp { client, kg in
            let fleet = try await seedDevice(kg)
            let session = try await signIn(client, token: kg.adminToken)
            let other = try await signIn(client, token: kg.adminToken)
            // Without a CSRF token, and with another session's: refused, nothing changes.
            for (headers, body) in [
                session.form(["reason": "x"], csrf: false),
                { var s = session; s.csrf = other.csrf; return s.form(["reason": "x"]) }(),
            ] {
                try await client.execute(uri: "/ui/devices/dev-1/quarantine", method: .post, headers: headers, body: body) {
                    #expect($0.status == .forbidden)
                    #expect(String(buffer: $0.body).contains("csrfTokenInvalid"))
                }
            }
            #expect(try await fleet.device(id: "dev-1").state == .allowlisted)
            // With it: quarantined, audited as the token's name; the reason is shown as text.
            let (headers, body) = session.form(["reason": "<script>alert(1)</script>"])
            try await client.execute(uri: "/ui/devices/dev-1/quarantine", method: .post, headers: headers, body: body) {
                #expect($0.status == .seeOther)
                #expect($0.headers[.location]?.hasPrefix("/ui/devices/dev-1?notice=") == true)
            }
            #expect(try await fleet.device(id: "dev-1").state == .quarantined)
            let events = try await kg.store.auditEvents(subject: "dev-1", since: nil, limit: 10)
            #expect(events.last?.action == "device.quarantined")
            #expect(events.last?.actor == "admin:initial")
            let (status, html) = try await page(client, session, "/ui/devices/dev-1")
            #expect(status == .ok)
            #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(!html.contains("<script>alert(1)"))
            let (_, search) = try await page(client, session, "/ui/devices?q=%3Cscript%3Ex")
            #expect(search.contains("value=\"&lt;script&gt;x\""))
        }
    }

    @Test func aReadOnlyTokenSeesPagesButCannotAct() async throws {
        try await withApp { client, kg in
            let fleet = try await seedDevice(kg)
            let (_, text) = try await kg.server.services.tokens.create(
                name: "viewer", role: .readOnly, lifetime: nil, actor: "test")
            let session = try await signIn(client, token: text)
            #expect(try await page(client, session, "/ui/devices/dev-1").0 == .ok)
            let (headers, body) = session.form(["reason": "x"])
            try await client.execute(uri: "/ui/devices/dev-1/retire", method: .post, headers: headers, body: body) {
                #expect($0.status == .forbidden)
                #expect(String(buffer: $0.body).contains("roleForbidden"))
            }
            #expect(try await fleet.device(id: "dev-1").state == .allowlisted)
        }
    }

    @Test func sessionsEndAtSignOutAndWithTheirToken() async throws {
        try await withApp { client, kg in
            let (_, text) = try await kg.server.services.tokens.create(
                name: "temporary", role: .operator, lifetime: nil, actor: "test")
            let first = try await signIn(client, token: text)
            let second = try await signIn(client, token: kg.adminToken)
            #expect(try await page(client, first, "/ui/").0 == .ok)
            try await kg.server.services.tokens.revoke(name: "temporary", actor: "test")
            #expect(try await page(client, first, "/ui/").0 == .seeOther, "the token's revocation ends its sessions")
            let (headers, body) = second.form([:])
            try await client.execute(uri: "/ui/signout", method: .post, headers: headers, body: body) {
                #expect($0.status == .seeOther)
                #expect($0.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
            #expect(try await page(client, second, "/ui/").0 == .seeOther, "signed out")
        }
    }

    @Test func sessionsSurviveARestartOfTheNode() async throws {
        let kg = try await TestKeygate.make()
        let session = try await Application(router: try kg.server.httpsRouter()).test(.router) { client in
            try await signIn(client, token: kg.adminToken)
        }
        // A new router is what a restarted node builds: it reads the sessions from the database.
        let status = try await Application(router: try kg.server.httpsRouter()).test(.router) { client in
            try await page(client, session, "/ui/").0
        }
        #expect(status == .ok)
    }

    @Test func pagesShowTheFleet() async throws {
        try await withApp { client, kg in
            let services = kg.server.services
            _ = try await services.fleet.createGroup(GroupRequest(name: "open-door"), actor: "test")
            var open = GroupRequest()
            open.firstContact = "open"
            _ = try await services.fleet.updateGroup(named: "open-door", open, actor: "test")
            _ = try await services.fleet.importAllowlist(
                AllowlistImportRequest(
                    entries: (0..<120).map { .init(deviceId: String(format: "unit-%03d", $0), group: "open-door") }),
                actor: "test")
            let issued = try await services.certificates.issue(
                csr: try TestCSR.make().der, profile: .device, identity: CertificateIdentity(commonName: "unit-000"),
                validity: 3 * 86_400, actor: "test")
            let session = try await signIn(client, token: kg.adminToken)
            let (_, overview) = try await page(client, session, "/ui/")
            #expect(overview.contains("Devices: 120"))
            #expect(overview.contains("<rect class=\"issued\""), "the chart has a bar for the issuance")
            #expect(overview.contains("<span class=\"n\">1</span> <span class=\"label\">within 7 days</span>"))
            let (_, groups) = try await page(client, session, "/ui/groups")
            #expect(groups.contains("<span class=\"flag\""), "an open first contact is flagged")
            let (_, firstPage) = try await page(client, session, "/ui/devices?q=unit-")
            #expect(firstPage.contains("unit-049") && !firstPage.contains("unit-050"))
            #expect(firstPage.contains("after=unit-049"))
            let (_, secondPage) = try await page(client, session, "/ui/devices?q=unit-&after=unit-049")
            #expect(secondPage.contains("unit-050") && !secondPage.contains("unit-049<"))
            let serial = issued.record.serial
            let (status, certificate) = try await page(client, session, "/ui/certificates/\(serial)")
            #expect(status == .ok && certificate.contains("Revoke this certificate"))
            let (headers, body) = session.form(["reason": "keyCompromise"])
            try await client.execute(uri: "/ui/certificates/\(serial)/revoke", method: .post, headers: headers, body: body) {
                #expect($0.status == .seeOther)
            }
            #expect(try await services.certificates.certificate(serial: serial).status == .revoked)
            for path in ["/ui/", "/ui/devices", "/ui/devices/unit-001", "/ui/connectors", "/ui/rotations", "/ui/allowlist", "/ui/audit?actor=admin:initial",
                "/ui/groups/open-door", "/ui/devices/unit-001/retire", "/ui/certificates"]
            {
                let (status, html) = try await page(client, session, path)
                #expect(status == .ok, "\(path)")
                #expect(html.contains("</html>"), "\(path)")
                // Empty and missing values render as nothing, and their sections are skipped.
                #expect(!html.contains("\"nil\"") && !html.contains(">nil<") && !html.contains("href=\"\""), "\(path)")
                #expect(!html.contains("role=\"alert\"></p>"), "\(path)")
            }
            let (_, audit) = try await page(client, session, "/ui/audit?actor=admin:initial")
            #expect(audit.contains("certificate.revoked"))
            let verify = session.form([:])
            try await client.execute(uri: "/ui/audit/verify", method: .post, headers: verify.0, body: verify.1) {
                #expect(String(buffer: $0.body).contains("The audit chain holds"))
            }
        }
    }

    @Test func aCSVUploadIsImportedWithErrorsByLine() async throws {
        try await withApp { client, kg in
            _ = try await kg.server.services.fleet.createGroup(GroupRequest(name: "fleet"), actor: "test")
            let session = try await signIn(client, token: kg.adminToken)
            var csv = "deviceId,group\n"
            for index in 0..<600 { csv += String(format: "csv-%04d,fleet\n", index) }
            csv += "bad id!,fleet\ncsv-9999,nogroup\n"
            let boundary = "----keygate-test-boundary"
            var body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n\(session.csrf)\r\n"
            body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fleet.csv\"\r\n"
            body += "Content-Type: text/csv\r\n\r\n\(csv)\r\n--\(boundary)--\r\n"
            var headers = session.headers
            headers[.contentType] = "multipart/form-data; boundary=\(boundary)"
            let location = try await client.execute(
                uri: "/ui/allowlist/import", method: .post, headers: headers, body: ByteBuffer(string: body)
            ) { response -> String in
                #expect(response.status == .seeOther)
                return try #require(response.headers[.location])
            }
            var html = ""
            for _ in 0..<100 {
                html = try await page(client, session, location).1
                if html.contains("data-finished=\"true\"") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(html.contains("600 added"))
            #expect(html.contains("<td>602</td>"), "the bad ID is named by its line")
            #expect(html.contains("<td>603</td>"), "the unknown group is named by its line")
            #expect(try await kg.store.devices(prefix: "csv-", state: .allowlisted, group: nil, after: nil, limit: 1000).count == 600)
        }
    }

    @Test func aDeadLetterIsRetriedAndARotationStartedFromTheDashboard() async throws {
        try await withApp { client, kg in
            let fleet = try await seedDevice(kg)
            var connector = ConnectorRequest(name: "dps", type: "dps")
            connector.connectionString = "HostName=dps.example;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAA=="
            connector.idScope = "0ne00000000"
            _ = try await kg.server.services.connectors.add(connector, actor: "test")
            try await kg.store.enqueue(OutboxItem(connector: "dps", deviceID: "dev-1", action: .enroll), audit: nil)
            let item = try #require(try await kg.store.outboxItems(state: .pending, deviceID: "dev-1", limit: 1).first)
            try await kg.store.failOutboxItem(
                id: item.id, error: "HTTP 400 from DPS: <b>bad</b> enrollment", nextAttemptAt: Date(), deadLetter: true,
                audit: nil)
            let session = try await signIn(client, token: kg.adminToken)
            let (_, connectors) = try await page(client, session, "/ui/connectors")
            #expect(connectors.contains("action=\"/ui/outbox/\(item.id)/retry\""), "the dead letter has a retry button")
            #expect(connectors.contains("&lt;b&gt;bad&lt;/b&gt;"), "Azure's error is shown as text")
            let (headers, body) = session.form([:])
            try await client.execute(uri: "/ui/outbox/\(item.id)/retry", method: .post, headers: headers, body: body) {
                #expect($0.status == .seeOther)
            }
            #expect(try await kg.store.outboxItems(state: .pending, deviceID: "dev-1", limit: 5).map(\.id) == [item.id])
            let retried = try await kg.store.auditEvents(matching: AuditFilter(action: "outbox.retried"))
            #expect(retried.first?.actor == "admin:initial")
            _ = fleet
            let (rotationHeaders, rotationBody) = session.form(["group": "fleet", "perMinute": "120", "reason": "new CA"])
            try await client.execute(uri: "/ui/rotations", method: .post, headers: rotationHeaders, body: rotationBody) {
                #expect($0.status == .seeOther)
            }
            let (rotation, _) = try await kg.server.services.lifecycle.rotation(group: "fleet")
            #expect(rotation.perMinute == 120 && rotation.reason == "new CA")
            let (_, rotations) = try await page(client, session, "/ui/rotations")
            #expect(rotations.contains("120 / min") && rotations.contains("<progress"))
        }
    }

    @Test(.tags(.outsideTool), .fullRunOnly) func verifyingTheChainNamesTheBrokenEntry() async throws {
        try await withApp { client, kg in
            _ = try await seedDevice(kg)
            let session = try await signIn(client, token: kg.adminToken)
            let events = try await kg.store.auditEvents(matching: AuditFilter(action: "group.created"))
            let target = try #require(events.first)
            let run = try await ExternalTool.require("sqlite3").run([
                kg.directory.path(kg.server.configuration.database),
                "UPDATE audit_events SET actor = 'admin:mallory' WHERE seq = \(target.sequence);",
            ])
            #expect(run.status == 0, "\(run.combined)")
            let (headers, body) = session.form([:])
            let html = try await client.execute(uri: "/ui/audit/verify", method: .post, headers: headers, body: body) {
                String(buffer: $0.body)
            }
            #expect(html.contains("The audit chain is broken at entry \(target.sequence)"))
            #expect(html.contains("before=\(target.sequence + 1)"), "a link shows the entry")
        }
    }

    @Test func groupsAreCreatedAndEditedAndDevicesAddedAndRetiredFromTheDashboard() async throws {
        try await withApp { client, kg in
            let session = try await signIn(client, token: kg.adminToken)
            let fleet = kg.server.services.fleet
            // Create: the form's fields become the policy.
            let create = session.form([
                "name": "plant-7", "method-ddk": "on", "firstContact": "open", "validityDays": "90",
                "approval": "auto", "quarantineAction": "revoke", "profile": "device", "minimumAssurance": "1",
                "connector": "",
            ])
            try await client.execute(uri: "/ui/groups", method: .post, headers: create.0, body: create.1) {
                #expect($0.status == .seeOther)
            }
            var group = try await fleet.group(named: "plant-7")
            #expect(group.policy.validityDays == 90 && group.policy.firstContact == "open")
            #expect(group.policy.quarantineRevokes)
            // Edit: the same form on the group's page.
            let edit = session.form([
                "method-ddk": "on", "firstContact": "token", "validityDays": "30", "approval": "manual",
                "quarantineAction": "hold", "profile": "device", "minimumAssurance": "2", "connector": "",
            ])
            try await client.execute(uri: "/ui/groups/plant-7", method: .post, headers: edit.0, body: edit.1) {
                #expect($0.status == .seeOther)
            }
            group = try await fleet.group(named: "plant-7")
            #expect(group.policy.validityDays == 30 && group.policy.firstContact == "token")
            #expect(group.policy.approval == "manual" && group.policy.minimumAssurance == 2)
            let changes = try await kg.store.auditEvents(matching: AuditFilter(subject: "plant-7"))
            #expect(changes.map(\.action) == ["group.updated", "group.created"])
            #expect(changes.allSatisfy { $0.actor == "admin:initial" })
            // A bad value is refused with the policy's words, and nothing changes.
            let bad = session.form(["method-ddk": "on", "validityDays": "9999"])
            try await client.execute(uri: "/ui/groups/plant-7", method: .post, headers: bad.0, body: bad.1) {
                #expect($0.status == .badRequest)
                #expect(String(buffer: $0.body).contains("validityDays must be 1 to 3650"))
            }
            #expect(try await fleet.group(named: "plant-7").policy.validityDays == 30)
            // One device added by hand: the group needs a token at first contact, shown once.
            let add = session.form(["deviceId": "line-1", "group": "plant-7"])
            let location = try await client.execute(uri: "/ui/allowlist", method: .post, headers: add.0, body: add.1) {
                response -> String in
                #expect(response.status == .seeOther)
                return try #require(response.headers[.location])
            }
            let (_, added) = try await page(client, session, location)
            #expect(added.contains("line-1 added to the allowlist.") && added.contains("token, shown this once: kg_"))
            #expect(try await fleet.device(id: "line-1").state == .allowlisted)
            // Retired after its confirmation page.
            let (status, confirm) = try await page(client, session, "/ui/devices/line-1/retire")
            #expect(status == .ok && confirm.contains("cannot be undone"))
            let retire = session.form(["reason": "scrapped"])
            try await client.execute(uri: "/ui/devices/line-1/retire", method: .post, headers: retire.0, body: retire.1) {
                #expect($0.status == .seeOther)
            }
            #expect(try await fleet.device(id: "line-1").state == .retired)
            #expect(try await page(client, session, "/ui/devices/line-1/quarantine").0 == .conflict, "no confirmation for a retired device")
        }
    }
}
