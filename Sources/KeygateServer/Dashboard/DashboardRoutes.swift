import Foundation
import HTTPTypes
import Hummingbird
import KeygateDomain
import KeygatePKI
import KeygateStore
import NIOCore
import Synchronization

/// The operator dashboard at `/ui/`: server-rendered pages over the same services as the admin API.
/// Every page needs a session (signed in with an admin token); every action checks the CSRF token of
/// its form and the token's role for the admin API call it stands for, and is audited with the
/// token's name as the actor.
struct DashboardRoutes: Sendable {
    let services: KeygateServices
    let store: any ServerStore
    let imports: AllowlistImportJobs
    let health: DashboardHealth
    /// Refused sign-ins per client address: after 10 in 15 minutes the address waits 15 minutes.
    let signInGuard = ClientGuard(limits: .init(requestsPerSecond: 0, failuresPerDevice: 10, failuresPerClient: 10))
    var renderer: DashboardRenderer { .shared }
    var sessions: DashboardSessions { DashboardSessions(store: store) }

    typealias Context = KeygateRequestContext
    typealias Handler = @Sendable (Request, Context, DashboardViewer) async throws -> Response

    func register(on router: Router<Context>) {
        let ui = router.group("ui")
        ui.get("static/:file") { _, context in
            let file = try context.parameters.require("file")
            guard let asset = DashboardRenderer.shared.assets[file] else {
                throw KeygateError(.routeNotFound, "no dashboard file \(file)")
            }
            var headers = DashboardRenderer.headers(contentType: asset.contentType)
            headers[.cacheControl] = "max-age=300"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
        }
        ui.get("signin") { request, _ in
            if try await sessions.viewer(request) != nil { return Self.redirect("/ui/") }
            return renderer.page("signin", title: "Sign in", viewer: nil)
        }
        ui.post("signin") { request, context in
            let form = try await DashboardForm.read(request, viewer: nil, limit: 4096)
            do {
                try signInGuard.checkAttempt(from: context.clientAddress, device: "")
            } catch let error as KeygateError {
                var response = renderer.page(
                    "signin", title: "Sign in", viewer: nil,
                    problem: "Too many refused sign-ins from this address; try again in \((error.retryAfter ?? 60) / 60 + 1) minutes.",
                    status: .tooManyRequests)
                response.headers[.retryAfter] = String(error.retryAfter ?? 60)
                return response
            }
            do {
                var response = Self.redirect("/ui/")
                response.setCookie(try await sessions.signIn(token: form["token"] ?? ""))
                signInGuard.recordSuccess(from: context.clientAddress, device: "")
                return response
            } catch let error as KeygateError where error.code == .unauthorized || error.code == .tokenExpired {
                signInGuard.recordFailure(from: context.clientAddress, device: "")
                return renderer.page(
                    "signin", title: "Sign in", viewer: nil, problem: "Sign-in refused: \(error.message).",
                    status: .unauthorized)
            }
        }
        post(ui, "signout") { request, _, viewer in
            _ = try await DashboardForm.read(request, viewer: viewer)
            try await sessions.signOut(viewer)
            var response = Self.redirect("/ui/signin")
            response.setCookie(DashboardSessions.cookie(value: "", maxAge: 0))
            return response
        }
        get(ui, "") { request, _, viewer in try await overview(request, viewer) }
        get(ui, "devices") { request, _, viewer in try await devices(request, viewer) }
        get(ui, "devices/:id") { request, context, viewer in
            try await device(try Self.parameter(context, "id"), request, viewer)
        }
        get(ui, "devices/:id/:action") { request, context, viewer in
            try await confirmDeviceAction(
                try Self.parameter(context, "id"), try Self.parameter(context, "action"), viewer)
        }
        post(ui, "devices/:id/:action") { request, context, viewer in
            try await deviceAction(
                try Self.parameter(context, "id"), try Self.parameter(context, "action"), request, viewer)
        }
        get(ui, "groups") { request, _, viewer in try await groups(request, viewer) }
        post(ui, "groups") { request, _, viewer in try await saveGroup(nil, request, viewer) }
        get(ui, "groups/:name") { request, context, viewer in
            try await editGroup(try Self.parameter(context, "name"), viewer)
        }
        post(ui, "groups/:name") { request, context, viewer in
            try await saveGroup(try Self.parameter(context, "name"), request, viewer)
        }
        get(ui, "allowlist") { request, _, viewer in try await allowlist(request, viewer) }
        post(ui, "allowlist") { request, _, viewer in try await addToAllowlist(request, viewer) }
        post(ui, "allowlist/import") { request, _, viewer in try await startImport(request, viewer) }
        get(ui, "allowlist/import/:job") { request, context, viewer in
            try await importProgress(try Self.parameter(context, "job"), request, viewer)
        }
        get(ui, "connectors") { request, _, viewer in try await connectors(request, viewer) }
        post(ui, "connectors/:name/test") { request, context, viewer in
            try await testConnector(try Self.parameter(context, "name"), request, viewer)
        }
        post(ui, "outbox/:id/retry") { request, context, viewer in
            try await retryOutbox(try Self.parameter(context, "id"), request, viewer)
        }
        get(ui, "certificates") { request, _, viewer in try await certificates(request, viewer) }
        get(ui, "certificates/:serial") { request, context, viewer in
            try await certificate(try Self.parameter(context, "serial"), request, viewer)
        }
        post(ui, "certificates/:serial/revoke") { request, context, viewer in
            try await revoke(try Self.parameter(context, "serial"), request, viewer)
        }
        get(ui, "rotations") { request, _, viewer in try await rotations(request, viewer) }
        post(ui, "rotations") { request, _, viewer in try await startRotation(request, viewer) }
        get(ui, "audit") { request, _, viewer in try await audit(request, viewer, verification: nil) }
        post(ui, "audit/verify") { request, _, viewer in
            _ = try await DashboardForm.read(request, viewer: viewer)
            return try await audit(request, viewer, verification: try await services.audit.verify())
        }
    }

    // MARK: Plumbing

    private func get(_ group: RouterGroup<Context>, _ path: String, _ handler: @escaping Handler) {
        let wrapped = guarded(handler)
        if path.isEmpty { group.get(use: wrapped) } else { group.get(RouterPath(path), use: wrapped) }
    }

    private func post(_ group: RouterGroup<Context>, _ path: String, _ handler: @escaping Handler) {
        group.post(RouterPath(path), use: guarded(handler))
    }

    /// Requires a session (else to the sign-in page) and shows errors as a page.
    private func guarded(_ handler: @escaping Handler) -> @Sendable (Request, Context) async throws -> Response {
        { [renderer, sessions] request, context in
            guard let viewer = try await sessions.viewer(request) else {
                if request.method == .get { return Self.redirect("/ui/signin") }
                throw KeygateError(.unauthorized, "sign in to the dashboard first")
            }
            var context = context
            context.adminName = viewer.name
            do {
                return try await handler(request, context, viewer)
            } catch let error as KeygateError {
                return renderer.page(
                    "error", title: "Refused", viewer: viewer, problem: "\(error.message) (\(error.code.rawValue))",
                    status: error.code.httpStatus)
            }
        }
    }

    /// A path parameter, percent-decoded.
    static func parameter(_ context: Context, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func path(_ base: String, _ query: [String: String?]) -> String {
        let pairs = query.sorted { $0.key < $1.key }.compactMap { key, value -> String? in
            guard let value, !value.isEmpty else { return nil }
            return "\(key)=\(value.addingPercentEncoding(withAllowedCharacters: .urlQueryValue) ?? "")"
        }
        return pairs.isEmpty ? base : base + "?" + pairs.joined(separator: "&")
    }

    private func query(_ request: Request, _ name: String) -> String? {
        guard let value = request.uri.queryParameters.get(name)?.trimmingCharacters(in: .whitespaces), !value.isEmpty
        else { return nil }
        return value
    }

    // MARK: Overview

    private func overview(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let now = Date()
        let counts = try await health.deviceCounts(store, now: now)
        let total = counts.values.reduce(0, +)
        let states = Device.State.allCases.map { state in
            ["state": state.rawValue, "count": DashboardFormat.count(counts[state] ?? 0), "href": Self.path("/ui/devices", ["state": state.rawValue])]
        }
        let expiring = try await store.activeCertificatesExpiring(now: now, within: [7 * 86_400, 30 * 86_400])
        let actions = ["certificate.issued", "certificate.renewed"]
        // One query per action, by 5 minutes over the day; the hour's buckets are its last twelve, the
        // day's hours are sums of twelve.
        let fiveMinutes = Int64(now.timeIntervalSince1970 / 300) * 300
        let hourStart = fiveMinutes - 11 * 300
        let dayStart = Int64(now.timeIntervalSince1970 / 3600) * 3600 - 23 * 3600
        let byFiveMinutes = try await store.activity(
            actions: actions, since: Date(timeIntervalSince1970: TimeInterval(dayStart)), bucket: 300)
        let lastHour = byFiveMinutes.mapValues { $0.filter { $0.key >= hourStart } }
        let lastDay = byFiveMinutes.mapValues { counts in
            counts.reduce(into: [Int64: Int]()) { hours, entry in hours[entry.key / 3600 * 3600, default: 0] += entry.value }
        }
        func series(_ data: [String: [Int64: Int]]) -> [(label: String, cssClass: String, counts: [Int64: Int])] {
            [("issued", "issued", data["certificate.issued"] ?? [:]), ("renewed", "renewed", data["certificate.renewed"] ?? [:])]
        }
        let clock = { (start: Int64) -> String in
            let date = Date(timeIntervalSince1970: TimeInterval(start))
            let components = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: date)
            return String(format: "%02d:%02d", components.hour ?? 0, components.minute ?? 0)
        }
        let hourChart = DashboardFormat.chart(
            title: "Certificates issued and renewed, last hour, by 5 minutes",
            buckets: (0..<12).map { hourStart + Int64($0) * 300 }, bucketLabel: clock, series: series(lastHour))
        let dayChart = DashboardFormat.chart(
            title: "Certificates issued and renewed, last 24 hours, by hour",
            buckets: (0..<24).map { dayStart + Int64($0) * 3600 }, bucketLabel: clock, series: series(lastDay))
        let sum = { (data: [String: [Int64: Int]], action: String) in data[action]?.values.reduce(0, +) ?? 0 }
        let outbox = try await store.outboxHealth()
        let connectors = try await store.connectors().map { connector -> [String: Any] in
            let health = outbox[connector.name] ?? OutboxHealth()
            return [
                "name": connector.name, "kind": connector.kind.rawValue, "pending": health.pending,
                "retrying": health.retrying, "deadLetters": health.deadLetters, "hasDeadLetters": health.deadLetters > 0,
                "lastError": health.lastError ?? "", "lastErrorAt": DashboardFormat.relative(health.lastErrorAt, now: now),
            ]
        }
        let crl = try await store.latestCRL(issuer: services.certificates.issuerName)
        let probe = await health.probe(services: services, store: store, now: now)
        return renderer.page(
            "overview", title: "Overview", viewer: viewer, section: "Overview",
            [
                "total": DashboardFormat.count(total), "states": states,
                "expiring7": DashboardFormat.count(expiring[0]), "expiring30": DashboardFormat.count(expiring[1]),
                "hourChart": hourChart, "dayChart": dayChart,
                "issuedHour": sum(lastHour, "certificate.issued"), "renewedHour": sum(lastHour, "certificate.renewed"),
                "issuedDay": sum(lastDay, "certificate.issued"), "renewedDay": sum(lastDay, "certificate.renewed"),
                "connectors": connectors, "noConnectors": connectors.isEmpty,
                "crl": crl.map { crl -> [String: Any] in
                    [
                        "number": crl.number, "entries": DashboardFormat.count(crl.entryCount),
                        "age": DashboardFormat.relative(crl.thisUpdate, now: now),
                        "nextUpdate": DashboardFormat.relative(crl.nextUpdate, now: now),
                        "stale": crl.nextUpdate < now,
                    ]
                } as Any? as Any,
                "signer": probe.signer, "signerOK": probe.signerOK, "database": probe.database,
                "databaseOK": probe.databaseOK,
            ])
    }

    // MARK: Devices

    private func devices(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let prefix = query(request, "q")
        let state = try query(request, "state").map { text in
            guard let state = Device.State(rawValue: text) else {
                throw KeygateError(.malformedInput, "unknown state '\(text)'")
            }
            return state
        }
        let group = query(request, "group")
        let after = query(request, "after")
        let pageSize = 50
        let devices = try await store.devices(prefix: prefix, state: state, group: group, after: after, limit: pageSize)
        let groups = try await store.groups().map(\.name)
        let rows = devices.map { device -> [String: Any] in
            [
                "id": device.id, "href": "/ui/devices/" + Self.segment(device.id), "group": device.group,
                "state": device.state.rawValue, "method": device.attestationMethod ?? "—", "epoch": device.ddkEpoch,
                "updated": DashboardFormat.relative(device.updatedAt),
            ]
        }
        let next =
            devices.count == pageSize
            ? Self.path("/ui/devices", ["q": prefix, "state": state?.rawValue, "group": group, "after": devices.last?.id])
            : nil
        return renderer.page(
            "devices", title: "Devices", viewer: viewer, section: "Devices",
            [
                "q": prefix ?? "", "rows": rows, "none": rows.isEmpty, "next": next as Any,
                "first": after != nil ? Self.path("/ui/devices", ["q": prefix, "state": state?.rawValue, "group": group]) : Optional<String>.none as Any,
                "states": Device.State.allCases.map { ["value": $0.rawValue, "selected": $0 == state] },
                "groups": groups.map { ["value": $0, "selected": $0 == group] },
            ])
    }

    static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathValue) ?? text
    }

    private func device(_ id: String, _ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let device = try await services.fleet.device(id: id)
        let certificates = try await services.fleet.certificates(ofDevice: id).reversed().map { record -> [String: Any] in
            [
                "serial": record.serial, "href": "/ui/certificates/" + record.serial, "status": record.status.rawValue,
                "notAfter": DashboardFormat.time(record.notAfter), "issued": DashboardFormat.time(record.createdAt),
            ]
        }
        let outbox = try await services.connectors.outbox(state: nil, deviceID: id, limit: 20).items
        let azure = outbox.map { item -> [String: Any] in
            [
                "id": item.id, "connector": item.connector, "action": item.action.rawValue, "state": item.state.rawValue,
                "attempts": item.attempts, "lastError": item.lastError ?? "", "updated": DashboardFormat.time(item.updatedAt),
            ]
        }
        let events = try await services.fleet.auditEvents(subject: id, limit: 50).reversed().map(Self.event)
        let delivered = outbox.first { $0.state == .delivered }
        let azureSummary: String
        switch delivered?.action {
        case .enroll?: azureSummary = "enrolled and enabled (\(delivered!.connector))"
        case .enable?: azureSummary = "enabled again (\(delivered!.connector))"
        case .disable?: azureSummary = "disabled: enrollment and hub identity (\(delivered!.connector))"
        case .delete?: azureSummary = "deleted (\(delivered!.connector))"
        case nil: azureSummary = outbox.isEmpty ? "nothing sent to Azure yet" : "not confirmed by Azure yet"
        }
        let pending = outbox.filter { $0.state == .pending }.map(\.action.rawValue)
        return renderer.page(
            "device", title: "Device \(id)", viewer: viewer, section: "Devices", notice: query(request, "notice"),
            [
                "id": id, "segment": Self.segment(id), "group": device.group, "state": device.state.rawValue,
                "reason": device.stateReason ?? "", "method": device.attestationMethod ?? "—",
                "assurance": device.assuranceLevel.map(String.init) ?? "—", "epoch": device.ddkEpoch,
                "failed": device.failedAttempts, "created": DashboardFormat.time(device.createdAt),
                "updated": DashboardFormat.time(device.updatedAt), "certificates": certificates,
                "azureSummary": azureSummary, "azurePending": pending.joined(separator: ", "), "azure": azure,
                "events": events, "canQuarantine": device.state != .quarantined && device.state != .retired,
                "canReauthorize": device.state == .quarantined, "canRetire": device.state != .retired,
            ])
    }

    static func event(_ event: AuditEvent) -> [String: Any] {
        [
            "seq": event.sequence, "at": DashboardFormat.time(event.at), "actor": event.actor, "action": event.action,
            "subject": event.subject,
            "details": event.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
        ]
    }

    private static let deviceActions: [String: (title: String, button: String, api: String)] = [
        "quarantine": ("Quarantine", "Quarantine the device", "quarantine"),
        "reauthorize": ("Re-authorize", "Re-authorize the device", "reauthorize"),
        "retire": ("Retire", "Retire the device for good", "retire"),
    ]

    private func confirmDeviceAction(_ id: String, _ action: String, _ viewer: DashboardViewer) async throws -> Response
    {
        guard let meta = Self.deviceActions[action] else {
            throw KeygateError(.routeNotFound, "no device action \(action)")
        }
        let device = try await services.fleet.device(id: id)
        let allowed: Bool
        switch action {
        case "quarantine": allowed = device.state != .quarantined && device.state != .retired
        case "reauthorize": allowed = device.state == .quarantined
        default: allowed = device.state != .retired
        }
        guard allowed else {
            throw KeygateError(.invalidTransition, "\(id) is \(device.state.rawValue): it cannot be \(action)d now")
        }
        let group = try await services.fleet.group(named: device.group)
        let consequence: String
        switch action {
        case "quarantine":
            consequence =
                "Its certificates are \(group.policy.quarantineRevokes ? "revoked" : "put on hold"), and its DPS enrollment and hub identity are disabled."
        case "reauthorize":
            consequence =
                "It may attest again; its held certificates are \(group.policy.releaseHeldOnReauthorize ? "released" : "revoked"), and its enrollment and hub identity are enabled."
        default:
            consequence = "Its certificates are revoked and its DPS enrollment and hub identity deleted. This cannot be undone."
        }
        return renderer.page(
            "confirm", title: "\(meta.title) \(id)?", viewer: viewer, section: "Devices",
            [
                "id": id, "segment": Self.segment(id), "action": action, "button": meta.button, "state": device.state.rawValue,
                "consequence": consequence, "askReason": action != "reauthorize", "askReregistration": action == "reauthorize",
                "danger": action != "reauthorize",
            ])
    }

    private func deviceAction(_ id: String, _ action: String, _ request: Request, _ viewer: DashboardViewer)
        async throws -> Response
    {
        guard let meta = Self.deviceActions[action] else {
            throw KeygateError(.routeNotFound, "no device action \(action)")
        }
        let form = try await DashboardForm.read(request, viewer: viewer)
        try viewer.require("POST", "/admin/v1/devices/\(id)/\(meta.api)")
        let device: Device
        switch action {
        case "quarantine":
            device = try await services.lifecycle.quarantine(
                deviceID: id, reason: form["reason"] ?? "quarantined from the dashboard", actor: viewer.actor)
        case "reauthorize":
            device = try await services.lifecycle.reauthorize(
                deviceID: id, actor: viewer.actor, allowReregistration: form["allowReregistration"] == "on")
        default:
            device = try await services.lifecycle.retire(deviceID: id, reason: form["reason"], actor: viewer.actor)
        }
        health.countsChanged()
        return Self.redirect(
            Self.path("/ui/devices/" + Self.segment(id), ["notice": "\(id) is now \(device.state.rawValue)."]))
    }

    // MARK: Groups

    private func groups(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let groups = try await services.fleet.groups().map(Self.groupRow)
        return renderer.page(
            "groups", title: "Groups", viewer: viewer, section: "Groups", notice: query(request, "notice"),
            [
                "groups": groups, "none": groups.isEmpty,
                "form": try await groupForm(nil), "anyOpen": groups.contains { $0["open"] as? Bool == true },
            ])
    }

    static func groupRow(_ group: Group) -> [String: Any] {
        let policy = group.policy
        return [
            "name": group.name, "href": "/ui/groups/" + segment(group.name),
            "methods": policy.attestationMethods.joined(separator: ", "), "profile": policy.profile,
            "validity": policy.validitySeconds.map { "\($0) s" } ?? "\(policy.validityDays) days",
            "approval": policy.approval, "firstContact": policy.firstContact, "open": policy.firstContactIsOpen,
            "connector": policy.connector ?? "—", "quarantineAction": policy.quarantineAction,
            "devicesHref": path("/ui/devices", ["group": group.name]),
        ]
    }

    private func groupForm(_ group: Group?) async throws -> [String: Any] {
        let policy = group?.policy ?? Group.Policy()
        let connectors = try await store.connectors().map(\.name)
        func options(_ values: [String], _ selected: String?) -> [[String: Any]] {
            values.map { ["value": $0, "selected": $0 == selected] }
        }
        return [
            "name": group?.name ?? "", "isNew": group == nil,
            "action": group.map { "/ui/groups/" + Self.segment($0.name) } ?? "/ui/groups",
            "methods": ["ddk", "x509", "symmetric-key", "token"].map {
                ["value": $0, "checked": policy.attestationMethods.contains($0)]
            },
            "profiles": options(["device", "server"], policy.profile),
            "validityDays": policy.validityDays,
            "approval": options(["auto", "manual"], policy.approval),
            "firstContact": options(["token", "pinned", "open"], policy.firstContact),
            "quarantineAction": options(["hold", "revoke"], policy.quarantineAction),
            "connectors": options([""] + connectors, policy.connector ?? ""),
            "minimumAssurance": options(["1", "2", "3"], String(policy.minimumAssurance)),
        ]
    }

    private func editGroup(_ name: String, _ viewer: DashboardViewer) async throws -> Response {
        let group = try await services.fleet.group(named: name)
        return renderer.page(
            "group", title: "Group \(name)", viewer: viewer, section: "Groups",
            ["group": Self.groupRow(group), "form": try await groupForm(group)])
    }

    private func saveGroup(_ name: String?, _ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let form = try await DashboardForm.read(request, viewer: viewer)
        var body = GroupRequest(name: name ?? form["name"])
        let methods = ["ddk", "x509", "symmetric-key", "token"].filter { form.fields["method-\($0)"] == "on" }
        body.attestationMethods = methods
        body.profile = form["profile"]
        body.validityDays = try form["validityDays"].map {
            guard let days = Int($0) else { throw KeygateError(.invalidPolicy, "validityDays must be a number of days") }
            return days
        }
        body.approval = form["approval"]
        body.firstContact = form["firstContact"]
        body.quarantineAction = form["quarantineAction"]
        body.minimumAssurance = form["minimumAssurance"].flatMap(Int.init)
        body.connector = form.fields["connector"].map { $0.trimmingCharacters(in: .whitespaces) }
        if methods.contains("symmetric-key"), name == nil { body.generateSymmetricKey = true }
        let notice: String
        if let name {
            try viewer.require("PATCH", "/admin/v1/groups/\(name)")
            _ = try await services.fleet.updateGroup(named: name, body, actor: viewer.actor)
            notice = "Group \(name) saved."
        } else {
            try viewer.require("POST", "/admin/v1/groups")
            let (group, key) = try await services.fleet.createGroup(body, actor: viewer.actor)
            notice =
                "Group \(group.name) created."
                + (key.map { " Its symmetric key, shown this once: \($0)" } ?? "")
        }
        return Self.redirect(Self.path("/ui/groups", ["notice": notice]))
    }

    // MARK: Allowlist

    private func allowlist(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let after = query(request, "after")
        let prefix = query(request, "q")
        let page = try await store.devices(prefix: prefix, state: .allowlisted, group: nil, after: after, limit: 50)
        let groups = try await store.groups().map(\.name)
        return renderer.page(
            "allowlist", title: "Allowlist", viewer: viewer, section: "Allowlist", notice: query(request, "notice"),
            [
                "rows": page.map { ["id": $0.id, "href": "/ui/devices/" + Self.segment($0.id), "group": $0.group, "added": DashboardFormat.time($0.createdAt)] },
                "none": page.isEmpty, "q": prefix ?? "",
                "next": page.count == 50 ? Self.path("/ui/allowlist", ["q": prefix, "after": page.last?.id]) : Optional<String>.none as Any,
                "groups": groups.map { ["value": $0] },
            ])
    }

    private func addToAllowlist(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let form = try await DashboardForm.read(request, viewer: viewer)
        try viewer.require("POST", "/admin/v1/allowlist")
        guard let id = form["deviceId"], let group = form["group"] else {
            throw KeygateError(.malformedInput, "a device ID and a group are required")
        }
        let result = try await services.fleet.importAllowlist(
            AllowlistImportRequest(entries: [.init(deviceId: id, group: group, token: form["token"])]),
            actor: viewer.actor)
        if let error = result.errors.first { throw KeygateError(.malformedInput, "\(error.message) (\(error.code))") }
        var notice = result.added == 1 ? "\(id) added to the allowlist." : "\(id) updated."
        if let token = result.tokens?[id] { notice += " Its one-time enrollment token, shown this once: \(token)" }
        return Self.redirect(Self.path("/ui/allowlist", ["notice": notice]))
    }

    private func startImport(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let form = try await DashboardForm.read(request, viewer: viewer, limit: 16 << 20)
        try viewer.require("POST", "/admin/v1/allowlist")
        guard let file = form.files["file"] ?? form.fields["csv"].map({ Array($0.utf8) }), !file.isEmpty else {
            throw KeygateError(.malformedInput, "choose a CSV file (deviceId,group[,pinnedKey][,token])")
        }
        let id = try imports.start(
            csv: String(decoding: file, as: UTF8.self), fileName: form["fileName"] ?? "upload.csv", actor: viewer.actor,
            fleet: services.fleet)
        if request.headers[.accept]?.contains("application/json") == true {
            return try Self.json(["job": id, "href": "/ui/allowlist/import/\(id)"])
        }
        return Self.redirect("/ui/allowlist/import/\(id)")
    }

    private func importProgress(_ id: String, _ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let job = try imports.job(id)
        if job.finished { health.countsChanged() }
        if query(request, "format") == "json" {
            return try Self.json([
                "processed": job.processed, "total": job.total, "finished": job.finished, "errors": job.errors.count,
                "added": job.added, "updated": job.updated, "failure": job.failure ?? "",
            ])
        }
        let percent = job.total == 0 ? 100 : job.processed * 100 / job.total
        return renderer.page(
            "import", title: "Allowlist import", viewer: viewer, section: "Allowlist", refresh: job.finished ? nil : 1,
            [
                "id": id, "processed": job.processed, "total": job.total, "percent": percent, "finished": job.finished,
                "added": DashboardFormat.count(job.added), "updated": DashboardFormat.count(job.updated),
                "unchanged": DashboardFormat.count(job.unchanged), "failure": job.failure ?? "",
                "errors": job.errors.prefix(1000).map { ["line": $0.line, "message": $0.message] },
                "errorCount": DashboardFormat.count(job.errors.count), "hasErrors": !job.errors.isEmpty,
                "tokens": job.tokens.map { ["device": $0.device, "token": $0.token] }, "hasTokens": !job.tokens.isEmpty,
            ])
    }

    static func json(_ object: [String: Any]) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return Response(
            status: .ok, headers: DashboardRenderer.headers(contentType: "application/json"),
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Connectors

    private func connectors(_ request: Request, _ viewer: DashboardViewer, notice: String? = nil, problem: String? = nil)
        async throws -> Response
    {
        let health = try await store.outboxHealth()
        let deadLetters = try await services.connectors.outbox(state: .deadLetter, deviceID: nil, limit: 200).items
        let connectors = try await services.connectors.connectors().map { connector -> [String: Any] in
            let entry = health[connector.name] ?? OutboxHealth()
            let letters = deadLetters.filter { $0.connector == connector.name }
            return [
                "name": connector.name, "segment": Self.segment(connector.name), "kind": connector.kind.rawValue,
                "hasLetters": !letters.isEmpty,
                "pending": entry.pending, "retrying": entry.retrying, "deadLetters": entry.deadLetters,
                "lastError": entry.lastError ?? "", "lastErrorAt": DashboardFormat.relative(entry.lastErrorAt),
                "healthy": entry.deadLetters == 0 && entry.retrying == 0,
                "letters": letters.map { item -> [String: Any] in
                    [
                        "id": item.id, "device": item.deviceID, "deviceHref": "/ui/devices/" + Self.segment(item.deviceID),
                        "action": item.action.rawValue, "attempts": item.attempts, "lastError": item.lastError ?? "",
                        "updated": DashboardFormat.time(item.updatedAt),
                    ]
                },
            ]
        }
        return renderer.page(
            "connectors", title: "Connectors", viewer: viewer, section: "Connectors",
            notice: notice ?? query(request, "notice"), problem: problem,
            ["connectors": connectors, "none": connectors.isEmpty])
    }

    private func testConnector(_ name: String, _ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        _ = try await DashboardForm.read(request, viewer: viewer)
        try viewer.require("POST", "/admin/v1/connectors/\(name)/test")
        do {
            let answer = try await services.connectors.test(named: name)
            return try await connectors(request, viewer, notice: "\(name): \(answer)")
        } catch let error as KeygateError where error.code != .connectorNotFound {
            return try await connectors(request, viewer, problem: "\(name) failed its test: \(error.message)")
        }
    }

    private func retryOutbox(_ id: String, _ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        _ = try await DashboardForm.read(request, viewer: viewer)
        guard let number = Int64(id) else { throw KeygateError(.malformedInput, "an outbox item ID is a number") }
        try viewer.require("POST", "/admin/v1/outbox/\(id)/retry")
        let item = try await services.connectors.retry(outboxItem: number, actor: viewer.actor)
        return Self.redirect(
            Self.path("/ui/connectors", ["notice": "Outbox item \(id) (\(item.action.rawValue) \(item.deviceID)) is queued again."]))
    }

    // MARK: Certificates

    private func certificates(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        if let serial = query(request, "serial") {
            let normalized = serial.uppercased().replacingOccurrences(of: ":", with: "")
            return Self.redirect("/ui/certificates/" + Self.segment(normalized))
        }
        let after = query(request, "after")
        let status = try query(request, "status").map { text in
            guard let status = CertificateRecord.Status(rawValue: text) else {
                throw KeygateError(.malformedInput, "unknown status '\(text)'")
            }
            return status
        }
        // By status, the status index gives the soonest expiry first; unfiltered, the issue order.
        let records: [CertificateRecord]
        if let status {
            records = try await store.certificates(
                issuer: services.certificates.issuerName, status: status, after: after, limit: 50)
        } else {
            records = try await services.certificates.certificates(matching: CertificateQuery(after: after, limit: 50))
        }
        let counts = try await health.certificateCounts(store, now: Date())
        return renderer.page(
            "certificates", title: "Certificates", viewer: viewer, section: "Certificates",
            [
                "rows": records.map(Self.certificateRow), "none": records.isEmpty,
                "counts": CertificateRecord.Status.allCases.map {
                    ["status": $0.rawValue, "count": DashboardFormat.count(counts[$0] ?? 0), "href": Self.path("/ui/certificates", ["status": $0.rawValue])]
                },
                "next": records.count == 50 ? Self.path("/ui/certificates", ["status": status?.rawValue, "after": records.last?.serial]) : Optional<String>.none as Any,
            ])
    }

    static func certificateRow(_ record: CertificateRecord) -> [String: Any] {
        [
            "serial": record.serial, "href": "/ui/certificates/" + record.serial, "subject": record.subject,
            "status": record.status.rawValue, "profile": record.profile, "device": record.deviceID ?? "",
            "deviceHref": record.deviceID.map { "/ui/devices/" + segment($0) } ?? "",
            "notAfter": DashboardFormat.time(record.notAfter), "issued": DashboardFormat.time(record.createdAt),
        ]
    }

    private func certificate(_ serial: String, _ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let record = try await services.certificates.certificate(serial: serial)
        var row = Self.certificateRow(record)
        row["revokedAt"] = DashboardFormat.time(record.revokedAt)
        row["reason"] = record.revocationReason.map { "\($0)" } ?? ""
        row["pem"] = record.pem
        row["notBefore"] = DashboardFormat.time(record.notBefore)
        return renderer.page(
            "certificate", title: "Certificate \(serial)", viewer: viewer, section: "Certificates",
            notice: query(request, "notice"),
            [
                "certificate": row, "revocable": record.status != .revoked,
                "reasons": ["keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged", "privilegeWithdrawn", "certificateHold", "unspecified"].map { ["value": $0] },
            ])
    }

    private func revoke(_ serial: String, _ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let form = try await DashboardForm.read(request, viewer: viewer)
        try viewer.require("POST", "/admin/v1/certificates/\(serial)/revoke")
        let reason = try RevocationReason(name: form["reason"] ?? "unspecified")
        _ = try await services.certificates.revoke(serial: serial, reason: reason, actor: viewer.actor)
        health.countsChanged()
        return Self.redirect(
            Self.path("/ui/certificates/" + Self.segment(serial), ["notice": "Certificate \(serial) revoked (\(reason))."]))
    }

    // MARK: Rotations

    private func rotations(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        var rows: [[String: Any]] = []
        var running = false
        for group in try await services.fleet.groups() {
            guard let (rotation, progress) = try? await services.lifecycle.rotation(group: group.name) else {
                rows.append(["group": group.name, "none": true])
                continue
            }
            let percent = progress.devices == 0 ? 100 : progress.renewed * 100 / progress.devices
            if progress.renewed < progress.devices { running = true }
            rows.append([
                "group": group.name, "started": DashboardFormat.time(rotation.startedAt), "perMinute": rotation.perMinute,
                "reason": rotation.reason, "total": progress.devices, "renewed": progress.renewed,
                "asked": progress.asked, "percent": percent,
            ])
        }
        return renderer.page(
            "rotations", title: "Rotations", viewer: viewer, section: "Rotations", notice: query(request, "notice"),
            refresh: running ? 5 : nil,
            ["rows": rows, "groups": try await services.fleet.groups().map { ["value": $0.name] }])
    }

    private func startRotation(_ request: Request, _ viewer: DashboardViewer) async throws -> Response {
        let form = try await DashboardForm.read(request, viewer: viewer)
        guard let group = form["group"] else { throw KeygateError(.malformedInput, "choose a group") }
        try viewer.require("POST", "/admin/v1/groups/\(group)/rotations")
        guard let perMinute = Int(form["perMinute"] ?? "60") else {
            throw KeygateError(.malformedInput, "devices per minute is a number")
        }
        _ = try await services.lifecycle.startRotation(
            group: group, perMinute: perMinute, reason: form["reason"] ?? "started from the dashboard",
            actor: viewer.actor)
        return Self.redirect(Self.path("/ui/rotations", ["notice": "Rotation of \(group) started."]))
    }

    // MARK: Audit

    private func audit(_ request: Request, _ viewer: DashboardViewer, verification: AuditService.Verification?)
        async throws -> Response
    {
        let filter = AuditFilter(
            subject: query(request, "subject"), actor: query(request, "actor"), action: query(request, "action"),
            before: query(request, "before").flatMap { Int64($0) }, limit: 50)
        let events = try await store.auditEvents(matching: filter)
        var values: [String: Any] = [
            "events": events.map(Self.event), "none": events.isEmpty, "subject": filter.subject ?? "",
            "actor": filter.actor ?? "", "action": filter.action ?? "",
            "next": events.count == 50
                ? Self.path(
                    "/ui/audit",
                    ["subject": filter.subject, "actor": filter.actor, "action": filter.action, "before": events.last.map { String($0.sequence) }])
                : Optional<String>.none as Any,
        ]
        if let verification {
            if let problem = verification.problem {
                values["broken"] = [
                    "seq": problem.sequence, "reason": problem.reason,
                    "href": Self.path("/ui/audit", ["before": String(problem.sequence + 1)]),
                ] as [String: Any]
            } else {
                values["verified"] = [
                    "checkpoints": verification.checkpoints,
                    "newest": verification.newestCheckpoint.map(String.init) ?? "none",
                ] as [String: Any]
            }
        }
        return renderer.page("audit", title: "Audit log", viewer: viewer, section: "Audit", values)
    }
}

/// Signer and database health for the overview, probed at most every 30 seconds (a signature in an
/// HSM or Key Vault is a remote call).
final class DashboardHealth: Sendable {
    struct Probe: Sendable {
        var signer: String
        var signerOK: Bool
        var database: String
        var databaseOK: Bool
        var at: Date
    }

    private let last = Mutex<Probe?>(nil)
    private let counts = Mutex<(devices: [Device.State: Int], certificates: [CertificateRecord.Status: Int], at: Date)?>(nil)
    /// How long counts by state are reused: counting 100,000 rows is the overview's largest cost.
    static let countsFor: TimeInterval = 5

    /// Forgets the counts: this node just changed some (an action through the dashboard).
    func countsChanged() { counts.withLock { $0 = nil } }

    /// Devices by state, counted at most every ``countsFor`` seconds.
    func deviceCounts(_ store: any ServerStore, now: Date) async throws -> [Device.State: Int] {
        try await cachedCounts(store, now: now).devices
    }

    /// Certificates by status, counted at most every ``countsFor`` seconds.
    func certificateCounts(_ store: any ServerStore, now: Date) async throws -> [CertificateRecord.Status: Int] {
        try await cachedCounts(store, now: now).certificates
    }

    private func cachedCounts(_ store: any ServerStore, now: Date) async throws
        -> (devices: [Device.State: Int], certificates: [CertificateRecord.Status: Int], at: Date)
    {
        if let cached = counts.withLock({ $0 }), now.timeIntervalSince(cached.at) < Self.countsFor,
            now >= cached.at
        {
            return cached
        }
        let fresh = (devices: try await store.deviceCounts(), certificates: try await store.certificateCounts(), at: now)
        counts.withLock { $0 = fresh }
        return fresh
    }

    func probe(services: KeygateServices, store: any ServerStore, now: Date) async -> Probe {
        if let probe = last.withLock({ $0 }), now.timeIntervalSince(probe.at) < 30 { return probe }
        let signer = services.certificates.authority.signer
        let signStart = ContinuousClock.now
        var probe = Probe(signer: "", signerOK: false, database: "", databaseOK: false, at: now)
        do {
            _ = try await signer.sign(Array("keygate dashboard probe".utf8))
            probe.signerOK = true
            probe.signer = "\(signer.keyLocation): signed in \(Self.milliseconds(ContinuousClock.now - signStart))"
        } catch {
            probe.signer = "\(signer.keyLocation): \((error as? KeygateError)?.message ?? "\(error)")"
        }
        let databaseStart = ContinuousClock.now
        do {
            _ = try await store.auditHead()
            probe.databaseOK = true
            probe.database =
                "\(store.backendKind): answered in \(Self.milliseconds(ContinuousClock.now - databaseStart))"
        } catch {
            probe.database = "\(store.backendKind): \((error as? KeygateError)?.message ?? "\(error)")"
        }
        last.withLock { $0 = probe }
        return probe
    }

    static func milliseconds(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return ms < 10 ? "\((ms * 10).rounded() / 10) ms" : "\(Int(ms.rounded())) ms"
    }
}

extension CharacterSet {
    /// Characters left as they are in one path segment.
    static let urlPathValue: CharacterSet = {
        var set = CharacterSet.urlPathAllowed
        set.remove(charactersIn: "/?#;")
        return set
    }()

    /// Characters left as they are in a query value.
    static let urlQueryValue: CharacterSet = {
        var set = CharacterSet.urlQueryAllowed
        set.remove(charactersIn: "&=+#?")
        return set
    }()
}
