import Foundation
import Hummingbird
import KeygateAttestation
import KeygateDomain
import KeygatePKI
import KeygateStore
import SwiftASN1
import X509

/// `/admin/v1/groups`, `/admin/v1/allowlist`, `/admin/v1/devices`.
struct AdminOnboardingAPI {
    let onboarding: OnboardingService
    var store: any ServerStore { onboarding.store }

    func register(on router: Router<KeygateRequestContext>) {
        let group = router.group("admin/v1").add(middleware: AdminAuthMiddleware(store: store))
        group.post("groups") { request, context in try await createGroup(request, context) }
        group.get("groups") { _, _ in try jsonResponse(["groups": try await store.groups().map(GroupBody.init)]) }
        group.get("groups/:name") { _, context in
            try jsonResponse(GroupBody(try await requireGroup(try context.parameters.require("name"))))
        }
        group.patch("groups/:name") { request, context in try await updateGroup(request, context) }

        group.post("allowlist") { request, context in try await importAllowlist(request, context) }
        group.get("allowlist") { request, _ in
            let query = request.uri.queryParameters
            let devices = try await store.devices(
                state: nil, group: query.get("group"), after: query.get("after"),
                limit: try query.get("limit").map(parseLimit) ?? 100)
            var entries: [AllowlistBody] = []
            for device in devices {
                if let entry = try await store.allowlistEntry(deviceID: device.id) {
                    entries.append(AllowlistBody(entry, state: device.state.rawValue))
                }
            }
            let limit = try query.get("limit").map(parseLimit) ?? 100
            return try jsonResponse(
                AllowlistListBody(entries: entries, next: devices.count == limit ? devices.last?.id : nil))
        }
        group.delete("allowlist/:id") { _, context in
            let id = try context.parameters.require("id")
            try await store.removeFromAllowlist(
                deviceID: id, audit: .init(actor: actor(context), action: "allowlist.removed", subject: id))
            return Response(status: .noContent)
        }

        group.get("devices") { request, _ in
            let query = request.uri.queryParameters
            var state: Device.State?
            if let text = query.get("state") {
                guard let parsed = Device.State(rawValue: text) else {
                    let names = Device.State.allCases.map(\.rawValue).joined(separator: ", ")
                    throw KeygateError(.malformedInput, "state must be one of: \(names)")
                }
                state = parsed
            }
            let limit = try query.get("limit").map(parseLimit) ?? 100
            let devices = try await store.devices(
                state: state, group: query.get("group"), after: query.get("after"), limit: limit)
            return try jsonResponse(
                DeviceListBody(
                    devices: devices.map(DeviceBody.init), next: devices.count == limit ? devices.last?.id : nil))
        }
        group.get("devices/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let device = try await store.device(id: id) else {
                throw KeygateError(.deviceNotFound, "no device \(id)")
            }
            var body = DeviceBody(device)
            body.certificates = try await store.certificates(matching: .init(deviceID: id, limit: 100)).map(
                CertificateBody.init)
            body.events = try await store.auditEvents(subject: id, since: nil, limit: 20).map(AuditEventBody.init)
            return try jsonResponse(body)
        }
        group.post("devices/:id/quarantine") { request, context in
            struct Body: Decodable { var reason: String? }
            let body = try await request.keygateJSON(Body.self)
            let reason = body.reason ?? "manual"
            guard (1...200).contains(reason.count) else {
                throw KeygateError(.malformedInput, "reason must be 1 to 200 characters")
            }
            let device = try await onboarding.quarantine(
                deviceID: try context.parameters.require("id"), reason: reason, actor: actor(context))
            return try jsonResponse(DeviceBody(device))
        }
        group.post("devices/:id/reauthorize") { request, context in
            struct Body: Decodable { var allowReregistration: Bool? }
            let body = try await request.keygateOptionalJSON(Body.self)
            let device = try await onboarding.reauthorize(
                deviceID: try context.parameters.require("id"), actor: actor(context),
                allowReregistration: body?.allowReregistration ?? false)
            return try jsonResponse(DeviceBody(device))
        }
        group.post("devices/:id/retire") { request, context in
            struct Body: Decodable { var reason: String? }
            let body = try await request.keygateOptionalJSON(Body.self)
            if let reason = body?.reason, !(1...200).contains(reason.count) {
                throw KeygateError(.malformedInput, "reason must be 1 to 200 characters")
            }
            let device = try await onboarding.retire(
                deviceID: try context.parameters.require("id"), reason: body?.reason, actor: actor(context))
            return try jsonResponse(DeviceBody(device))
        }
        group.post("groups/:name/rotation") { request, context in
            struct Body: Decodable {
                var perMinute: Int?
                var reason: String?
            }
            let body = try await request.keygateOptionalJSON(Body.self)
            let (rotation, progress) = try await onboarding.startRotation(
                group: try context.parameters.require("name"), perMinute: body?.perMinute ?? 60,
                reason: body?.reason ?? "rotation", actor: actor(context))
            return try jsonResponse(RotationBody(rotation, progress), status: .created)
        }
        group.get("groups/:name/rotation") { _, context in
            let name = try context.parameters.require("name")
            guard let rotation = try await store.rotation(group: name) else {
                throw KeygateError(.rotationNotFound, "group \(name) has no rotation")
            }
            return try jsonResponse(RotationBody(rotation, try await store.rotationProgress(rotation, now: Date())))
        }
        group.post("devices/:id/approve") { _, context in
            let id = try context.parameters.require("id")
            let device = try await store.transition(
                deviceID: id, event: .approved, reason: "approved by \(actor(context))", attestation: nil,
                audit: .init(actor: actor(context), action: "device.approved", subject: id))
            return try jsonResponse(DeviceBody(device))
        }
    }

    private func actor(_ context: KeygateRequestContext) -> String { "admin:\(context.adminName ?? "unknown")" }

    private func requireGroup(_ name: String) async throws -> Group {
        guard let group = try await store.group(named: name) else {
            throw KeygateError(.groupNotFound, "no group named '\(name)'")
        }
        return group
    }

    // MARK: Groups

    private func createGroup(_ request: Request, _ context: KeygateRequestContext) async throws -> Response {
        let body = try await request.keygateJSON(GroupRequest.self, limit: 1 << 20)
        guard let name = body.name, Group.isValidName(name) else {
            throw KeygateError(.invalidPolicy, "a group name is 1 to 64 letters, digits, - and _")
        }
        var policy = Group.Policy()
        let generatedKey = try apply(body, to: &policy)
        try policy.validate()
        let group = Group(name: name, policy: policy)
        try await store.createGroup(
            group,
            audit: .init(actor: actor(context), action: "group.created", subject: name, details: policy.auditDetails))
        var result = GroupBody(group)
        result.symmetricKey = generatedKey
        return try jsonResponse(result, status: .created)
    }

    private func updateGroup(_ request: Request, _ context: KeygateRequestContext) async throws -> Response {
        let name = try context.parameters.require("name")
        var group = try await requireGroup(name)
        let body = try await request.keygateJSON(GroupRequest.self, limit: 1 << 20)
        let generatedKey = try apply(body, to: &group.policy)
        try group.policy.validate()
        try await store.updateGroup(
            group,
            audit: .init(
                actor: actor(context), action: "group.updated", subject: name, details: group.policy.auditDetails))
        var result = GroupBody(group)
        result.symmetricKey = generatedKey
        return try jsonResponse(result)
    }

    /// Applies the fields present in `body`; returns a generated symmetric key (shown once).
    private func apply(_ body: GroupRequest, to policy: inout Group.Policy) throws -> String? {
        if let value = body.attestationMethods { policy.attestationMethods = value }
        if let value = body.minimumAssurance { policy.minimumAssurance = value }
        if let value = body.profile {
            _ = try CertificateProfile.named(value)
            policy.profile = value
        }
        if let value = body.keyAlgorithms {
            policy.keyAlgorithms = try value.map {
                guard let algorithm = KeyAlgorithm(flag: $0) else {
                    throw KeygateError(.invalidPolicy, "unknown key algorithm '\($0)'")
                }
                return algorithm.rawValue
            }
        }
        if let value = body.validityDays {
            policy.validityDays = value
            policy.validitySeconds = nil
        }
        if let value = body.validitySeconds { policy.validitySeconds = value == 0 ? nil : value }
        if let value = body.quarantineAction { policy.quarantineAction = value }
        if let value = body.releaseHeldOnReauthorize { policy.releaseHeldOnReauthorize = value }
        if let value = body.allowKeyReuse { policy.allowKeyReuse = value }
        if let value = body.renewAfterFraction { policy.renewAfterFraction = value }
        if let value = body.renewAfterExpiryDays { policy.renewAfterExpiryDays = value }
        if let value = body.approval { policy.approval = value }
        if let value = body.connector { policy.connector = value.isEmpty ? nil : value }
        if let value = body.bootstrapCAs {
            for pem in value {
                guard let certificate = try? Certificate(pemEncoded: pem), isCertificateAuthority(certificate) else {
                    throw KeygateError(.invalidPolicy, "bootstrapCAs must be PEM CA certificates")
                }
            }
            policy.bootstrapCAs = value
        }
        var generated: String?
        if body.symmetricKey != nil || body.generateSymmetricKey == true {
            guard let onboardingSecrets = onboarding.secrets else {
                throw KeygateError(.invalidPolicy, "the server has no passphrase to seal group keys with")
            }
            let key = body.symmetricKey ?? SymmetricKeyAttestation.generateGroupKey()
            guard let decoded = Data(base64Encoded: key), decoded.count >= 16 else {
                throw KeygateError(.invalidPolicy, "symmetricKey must be base64 of at least 16 bytes")
            }
            policy.sealedGroupKey = try onboardingSecrets.seal(key)
            if body.symmetricKey == nil { generated = key }
        }
        return generated
    }

    // MARK: Allowlist

    private func importAllowlist(_ request: Request, _ context: KeygateRequestContext) async throws -> Response {
        let body = try await request.keygateJSON(AllowlistImportRequest.self, limit: 16 << 20)
        guard body.entries.count <= 20_000 else {
            throw KeygateError(.bodyTooLarge, "at most 20,000 entries per request; send batches")
        }
        var knownGroups = Set(try await store.groups().map(\.name))
        var entries: [AllowlistEntry] = []
        var errors: [AllowlistImportResultBody.RowError] = []
        var generatedTokens: [String: String] = [:]
        var seen = Set<String>()
        for (index, row) in body.entries.enumerated() {
            func reject(_ code: KeygateError.Code, _ message: String) {
                errors.append(.init(index: index, deviceId: row.deviceId, code: code.rawValue, message: message))
            }
            guard AllowlistEntry.isValidDeviceID(row.deviceId) else {
                reject(.invalidDeviceID, "device IDs are 1 to 128 letters, digits and : . _ -"); continue
            }
            guard seen.insert(row.deviceId).inserted else {
                reject(.conflict, "\(row.deviceId) appears twice"); continue
            }
            if !knownGroups.contains(row.group) {
                if try await store.group(named: row.group) != nil {
                    knownGroups.insert(row.group)
                } else {
                    reject(.groupNotFound, "no group named '\(row.group)'"); continue
                }
            }
            if let pinned = row.pinnedKey {
                guard let der = Base64URL.decode(pinned), DDKProtocol.isValidPublicKey(der) else {
                    reject(
                        .malformedInput,
                        "pinnedKey must be a P-256 SPKI in base64url (keygate-agent identity prints it)");
                    continue
                }
            }
            if let given = row.token, given.count < 16 || given.count > 256 {
                reject(.malformedInput, "an enrollment token must be 16 to 256 characters")
                continue
            }
            var token = row.token
            if row.generateToken == true {
                token = AdminTokenSecret.generate()
                generatedTokens[row.deviceId] = token
            }
            entries.append(
                AllowlistEntry(
                    deviceID: row.deviceId, group: row.group, pinnedKey: row.pinnedKey,
                    tokenHash: token.map(AdminTokenSecret.hash)))
        }
        if body.strict == true && !errors.isEmpty {
            return try jsonResponse(
                AllowlistImportResultBody(result: .init(), errors: errors, tokens: nil), status: .badRequest)
        }
        let result = try await store.importAllowlist(entries, actor: actor(context))
        return try jsonResponse(
            AllowlistImportResultBody(
                result: result, errors: errors, tokens: generatedTokens.isEmpty ? nil : generatedTokens))
    }
}

extension Group.Policy {
    var auditDetails: [String: String] {
        [
            "methods": attestationMethods.joined(separator: ","), "minimumAssurance": "\(minimumAssurance)",
            "approval": approval, "validityDays": "\(validityDays)",
            "validitySeconds": validitySeconds.map { "\($0)" } ?? "",
            "quarantineAction": quarantineAction, "releaseHeldOnReauthorize": "\(releaseHeldOnReauthorize)",
            "keyAlgorithms": keyAlgorithms.joined(separator: ","),
        ]
    }
}

/// Whether the certificate's basic constraints make it a CA.
func isCertificateAuthority(_ certificate: Certificate) -> Bool {
    guard let constraints = try? certificate.extensions.basicConstraints else { return false }
    if case .isCertificateAuthority = constraints { return true }
    return false
}
