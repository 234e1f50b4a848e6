import Crypto
import Foundation
import KeygateAttestation
import KeygateMQTT
public import NIOSSL
import Synchronization

/// The whole life of a device after the allowlist (steps 4 to 9): enroll with Keygate, wait until
/// its enrollment reached Azure, register with DPS (HTTPS or MQTT), connect to the assigned hub with
/// the certificate Keygate issued, and send telemetry. It keeps going across restarts from its state
/// folder: an enrolled device is not enrolled again, an assigned one does not register again.
public struct DeviceRunner: Sendable {
    /// How the device registers with DPS.
    public enum Transport: String, Sendable {
        /// DPS registration over HTTPS.
        case https
        /// DPS registration over MQTT.
        case mqtt
    }

    /// The steps, as a timeline reports them.
    public enum Step: String, Sendable, CaseIterable {
        /// Keygate issued the device its certificate.
        case enrolled = "enrolled with Keygate (certificate issued)"
        /// Keygate confirmed the enrollment reached Azure.
        case confirmed = "enrollment confirmed in Azure"
        /// DPS assigned the device to a hub.
        case registered = "registered with DPS"
        /// The device connected to its IoT Hub.
        case connected = "connected to IoT Hub"
        /// The hub acknowledged the first telemetry message.
        case telemetry = "first telemetry acknowledged"
    }

    /// How the device talks to Azure and how long it runs.
    public struct Options: Sendable {
        /// DPS over HTTPS (default) or MQTT.
        public var transport: Transport = .https
        /// Trust for Azure's endpoints (the sandbox CA); `nil`: the system's roots.
        public var azureTrust: [NIOSSLCertificate]?
        /// The DPS port for HTTPS registration.
        public var dpsHTTPSPort = 443
        /// The MQTT-over-TLS port of DPS and IoT Hub.
        public var mqttPort = 8883
        /// The pause between telemetry messages.
        public var telemetryInterval: Duration = .seconds(10)
        /// Stop after this many messages (`nil`: run until cancelled).
        public var messages: Int?
        /// How long to wait for the enrollment to reach Azure before giving up.
        public var confirmationTimeout: Duration = .seconds(300)
        /// How often to ask Keygate whether the certificate should be renewed (its answer carries
        /// the group's window with jitter, or the device's slot in a rotation).
        public var renewalCheckInterval: Duration = .seconds(3600)
        /// While quarantined, the agent asks Keygate again with backoff up to this interval.
        public var quarantineCheckLimit: Duration = .seconds(300)

        /// Options with every default.
        public init() {}
    }

    /// Enrolls the device with Keygate and holds its state folder.
    public let enrollment: Enrollment
    /// How the device talks to Azure.
    public let options: Options
    /// Called at each step, with the time it was reached.
    public let onStep: @Sendable (Step, ContinuousClock.Instant) -> Void
    /// Called with a line for the user at notable events (expiry, quarantine, reconnects).
    public let log: @Sendable (String) -> Void
    /// Called after each telemetry message the hub acknowledged: its sequence number and the
    /// certificate serial of the connection that carried it.
    public let onTelemetry: @Sendable (Int, String) -> Void

    /// Creates a runner; the callbacks default to doing nothing.
    public init(
        enrollment: Enrollment, options: Options,
        onStep: @escaping @Sendable (Step, ContinuousClock.Instant) -> Void = { _, _ in },
        log: @escaping @Sendable (String) -> Void = { _ in },
        onTelemetry: @escaping @Sendable (Int, String) -> Void = { _, _ in }
    ) {
        self.enrollment = enrollment
        self.options = options
        self.onStep = onStep
        self.log = log
        self.onTelemetry = onTelemetry
    }

    /// Runs the device's whole flow until `options.messages` telemetry messages are sent, or until cancelled.
    /// Renews the certificate when Keygate says so and follows quarantine and re-authorization. Throws
    /// ``AgentError`` when the group has no connector or the enrollment does not reach Azure in time, and the
    /// errors of Keygate or DPS that retrying does not cure.
    public func run() async throws {
        var state = try await enrolled()
        onStep(.enrolled, .now)
        var provisioning = try await confirmed()
        onStep(.confirmed, .now)
        guard let idScope = provisioning.idScope else {
            throw AgentError("the connector does not know its ID scope yet")
        }
        var identity = try tlsIdentity(state)
        var sent = 0
        var backoff = 1.0
        var nextRenewalCheck = ContinuousClock.now
        // A renewal runs beside the telemetry loop (asking Keygate, waiting for Azure, registering
        // with DPS can take a while); the loop switches connections once it finished.
        var renewal: (task: Task<Void, Never>, outcome: RenewalOutcome)?
        defer { renewal?.task.cancel() }
        /// Stops a renewal in flight before the loop enrolls by itself (one enrollment at a time).
        func stopRenewal() async {
            if let pending = renewal {
                pending.task.cancel()
                await pending.task.value
                renewal = nil
            }
        }
        var regainDelay = 1.0
        while options.messages.map({ sent < $0 }) ?? true {
            try Task.checkCancellation()
            // Offline past expiry: re-attest (DDK, bootstrap certificate or symmetric key) within the
            // group's grace; after it Keygate refuses until an operator re-authorizes the device.
            if let notAfter = state.certificateNotAfter, notAfter < Date() {
                await stopRenewal()
                log("the certificate expired; re-attesting to renew it")
                _ = try await retryingWhileUnreachable { try await enrollment.run() }
                state = try loadState()
                identity = try tlsIdentity(state)
                provisioning = try await confirmed()
                nextRenewalCheck = ContinuousClock.now + options.renewalCheckInterval
            }
            // Register unless this certificate was assigned already.
            if state.assignedHub == nil || state.assignedWithSerial != state.certificateSerial {
                do {
                    try await assign(&state, provisioning: provisioning, idScope: idScope, identity: identity)
                } catch let failure as DPSRegistrationFailed where failure.status == "disabled" {
                    log("DPS refuses the device (\(failure.message)); asking Keygate why")
                    await stopRenewal()
                    state = try await regainAccess(state, delay: &regainDelay)
                    identity = try tlsIdentity(state)
                    provisioning = try await confirmed()
                    continue
                }
            }
            onStep(.registered, .now)
            do {
                let hub = try await IoTHubDeviceConnection.connect(
                    hub: state.assignedHub!, port: options.mqttPort, deviceID: state.hubDeviceId!, identity: identity)
                onStep(.connected, .now)
                defer { Task { await hub.close() } }
                backoff = 1
                while options.messages.map({ sent < $0 }) ?? true {
                    let payload = try JSONSerialization.data(withJSONObject: [
                        "device": enrollment.deviceID, "sequence": sent,
                        "time": ISO8601DateFormatter().string(from: Date()),
                    ])
                    try await hub.send(Array(payload))
                    if sent == 0 { onStep(.telemetry, .now) }
                    onTelemetry(sent, state.certificateSerial ?? "")
                    sent += 1
                    if options.messages.map({ sent >= $0 }) ?? false { break }
                    if let pending = renewal, let result = pending.outcome.result {
                        renewal = nil
                        if let renewed = result {
                            // The old connection carried telemetry until now; reconnect with the new certificate.
                            state = renewed
                            identity = try tlsIdentity(state)
                            log("switching the hub connection to certificate \(state.certificateSerial ?? "?")")
                            break
                        }
                    }
                    if renewal == nil, ContinuousClock.now >= nextRenewalCheck {
                        nextRenewalCheck = ContinuousClock.now + options.renewalCheckInterval
                        let outcome = RenewalOutcome()
                        let registration = provisioning
                        let task = Task {
                            outcome.finish(await renewIfDue(provisioning: registration, idScope: idScope))
                        }
                        renewal = (task, outcome)
                    }
                    try await Task.sleep(for: options.telemetryInterval)
                }
            } catch let failure as MQTTClient.Failure where failure == .refused(returnCode: 5) {
                // The hub does not know this certificate (re-provisioned, disabled): register again.
                log("the hub refused the connection; registering with DPS again")
                state.assignedHub = nil
                try await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 60)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                log("hub connection lost: \(error); reconnecting in \(Int(backoff)) s")
                try await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 60)
            }
        }
    }

    /// After Azure refused the device: while Keygate answers `deviceQuarantined` it waits (with backoff
    /// up to `quarantineCheckLimit`) for an operator; once re-authorized (Keygate has it `registered`,
    /// or `allowlisted` to register its DDK keys again) it enrolls again for a new certificate, which
    /// replaces the one in the Azure enrollment.
    private func regainAccess(_ state: AgentState, delay: inout Double) async throws -> AgentState {
        let limit = Double(options.quarantineCheckLimit.components.seconds)
        while true {
            let status: DeviceAPI.StatusResponse?
            do {
                status = try await retryingWhileUnreachable { try await enrollment.status() }
            } catch let error as DeviceClient.APIError where error.code == "deviceQuarantined" {
                log("quarantined (\(error.message)); asking again in \(Int(delay)) s")
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, max(limit, 1))
                continue
            } catch is AgentError {
                status = nil  // allowed to register its DDK keys again
            }
            if let status, status.state == "enrolled" {
                // Keygate has it enrolled: Azure is still catching up.
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, max(limit, 1))
                return state
            }
            delay = 1
            log("re-authorized; enrolling again for a new certificate")
            _ = try await retryingWhileUnreachable { try await enrollment.run() }
            var renewed = try loadState()
            renewed.assignedHub = nil
            try enrollment.folder.save(renewed)
            return renewed
        }
    }

    /// Registers with DPS using `identity` and remembers the assignment.
    private func assign(
        _ state: inout AgentState, provisioning: DeviceAPI.Provisioning, idScope: String,
        identity: AzureDeviceIdentity
    ) async throws {
        let assignment = try await register(provisioning, idScope: idScope, identity: identity)
        state.assignedHub = assignment.assignedHub
        state.hubDeviceId = assignment.deviceId
        state.assignedWithSerial = state.certificateSerial
        try enrollment.folder.save(state)
        log("registered with DPS: hub \(assignment.assignedHub), device \(assignment.deviceId)")
    }

    /// Asks Keygate (mTLS) whether to renew; if so renews with a new key, waits until the new
    /// certificate is in the Azure enrollment and registers with it, all while the current hub
    /// connection keeps sending. Returns the new state, or `nil` when nothing changed. A failure
    /// leaves the current certificate in use and is retried at the next check.
    private func renewIfDue(provisioning: DeviceAPI.Provisioning, idScope: String) async -> AgentState? {
        do {
            let info = try await enrollment.renewalInfo()
            guard Date() >= info.renewAfter else { return nil }
            log("renewing certificate \(info.serial) (\(info.reason))")
            _ = try await enrollment.renew()
        } catch let error as DeviceClient.APIError where error.code == "clientCertificateInvalid" {
            // Keygate no longer takes this certificate for a renewal (a newer one exists that this
            // state folder lost): re-attest instead.
            log("\(error); renewing by re-attesting")
            do {
                _ = try await enrollment.run()
            } catch {
                log("re-attestation failed: \(error); keeping the current certificate")
                return nil
            }
        } catch {
            log("renewal check failed: \(error); keeping the current certificate")
            return nil
        }
        guard var renewed = try? loadState() else { return nil }
        log("renewed: certificate \(renewed.certificateSerial ?? "?")")
        do {
            let deadline = ContinuousClock.now + options.confirmationTimeout
            var delay = 0.5
            while ContinuousClock.now < deadline {
                let info = try await enrollment.renewalInfo()
                if info.provisioning?.confirmed ?? true { break }
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 10)
            }
            try await assign(&renewed, provisioning: provisioning, idScope: idScope, identity: try tlsIdentity(renewed))
        } catch {
            log("the new certificate is not registered yet (\(error)); the next connection registers it")
        }
        return renewed
    }

    private func loadState() throws -> AgentState {
        guard let state = enrollment.folder.load() else { throw AgentError("the state folder lost the enrollment") }
        return state
    }

    /// Enrolls unless the state folder holds a certificate; waits (with backoff) for approval.
    private func enrolled() async throws -> AgentState {
        if let state = enrollment.folder.load(), state.state == "enrolled", state.certificateSerial != nil,
            FileManager.default.fileExists(atPath: enrollment.folder.certificateFile)
        {
            return state
        }
        var delay = 1.0
        while true {
            if case .enrolled = try await retryingWhileUnreachable({ try await enrollment.run() }) { break }
            log("waiting for an operator's approval")
            try await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 60)
        }
        guard let state = enrollment.folder.load() else { throw AgentError("the state folder lost the enrollment") }
        return state
    }

    /// Retries while Keygate cannot be reached or answers 503 (restarting, busy): with backoff and
    /// jitter, for up to `confirmationTimeout`. Refusals (4xx) are not retried.
    private func retryingWhileUnreachable<T>(_ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + options.confirmationTimeout
        var delay = 0.5
        while true {
            do {
                return try await body()
            } catch let error as DeviceClient.APIError where error.status < 500 && error.status != 429 {
                throw error
            } catch let error as AgentError {
                throw error
            } catch {
                guard ContinuousClock.now < deadline else { throw error }
                log("Keygate unreachable (\(error)); retrying")
                try await Task.sleep(for: .seconds(delay * Double.random(in: 0.5...1.5)))
                delay = min(delay * 2, 10)
            }
        }
    }

    /// Waits until Keygate says the enrollment reached Azure.
    private func confirmed() async throws -> DeviceAPI.Provisioning {
        let deadline = ContinuousClock.now + options.confirmationTimeout
        var delay = 0.5
        while true {
            let status = try await retryingWhileUnreachable { try await enrollment.status() }
            guard let provisioning = status.provisioning else {
                throw AgentError("the device's group has no Azure connector; nothing to register with")
            }
            if provisioning.confirmed, provisioning.idScope != nil { return provisioning }
            guard ContinuousClock.now < deadline else {
                throw AgentError(
                    "the enrollment did not reach Azure in time" + (provisioning.lastError.map { ": \($0)" } ?? ""))
            }
            if let error = provisioning.lastError { log("enrollment not in Azure yet: \(error)") }
            try await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 10)
        }
    }

    private func register(_ provisioning: DeviceAPI.Provisioning, idScope: String, identity: AzureDeviceIdentity)
        async throws -> DPSAssignment
    {
        var delay = 1.0
        for attempt in 1...8 {
            do {
                switch options.transport {
                case .mqtt:
                    return try await DPSMQTTRegistration.register(
                        endpoint: provisioning.globalEndpoint, port: options.mqttPort, idScope: idScope,
                        registrationID: provisioning.registrationId, identity: identity)
                case .https:
                    return try await DPSHTTPSRegistration.register(
                        endpoint: provisioning.globalEndpoint, port: options.dpsHTTPSPort, idScope: idScope,
                        registrationID: provisioning.registrationId, identity: identity)
                }
            } catch let failure as DPSRegistrationFailed where failure.status == "disabled" {
                throw failure
            } catch {
                guard attempt < 8 else { throw error }
                log("DPS registration failed (\(error)); retrying in \(Int(delay)) s")
                try await Task.sleep(for: .seconds(delay * Double.random(in: 0.5...1.5)))
                delay = min(delay * 2, 30)
            }
        }
        throw AgentError("DPS registration failed")
    }

    /// The certificate chain Keygate issued and the device's key (DDK: derived, never stored).
    private func tlsIdentity(_ state: AgentState) throws -> AzureDeviceIdentity {
        let current = try enrollment.currentIdentity(state)
        return AzureDeviceIdentity(
            certificateChain: current.certificateChain, privateKey: current.privateKey, trustRoots: options.azureTrust)
    }
}

/// What a renewal running beside the telemetry loop ended with.
final class RenewalOutcome: Sendable {
    private let value = Mutex<(done: Bool, state: AgentState?)>((false, nil))

    func finish(_ state: AgentState?) {
        value.withLock { $0 = (true, state) }
    }

    /// `nil` while it runs; then the new state, or `.some(nil)` when nothing changed.
    var result: AgentState?? {
        value.withLock { $0.done ? .some($0.state) : nil }
    }
}
