import HTTPTypes
import Foundation
import Synchronization

/// A part of Azure the sandbox stands in for; faults and quotas are set per surface.
public enum SandboxSurface: String, CaseIterable, Codable, Sendable, CodingKeyRepresentable {
    /// A header a route sets (and the fault middleware removes) to say how many items of a bulk
    /// operation it refused as invalid.
    static let refusedItemsHeader = HTTPField.Name("x-sandbox-refused-items")!

    case aad
    case keyVault = "keyvault"
    case dpsService = "dps-service"
    case dpsDevice = "dps-device"
    /// IoT Hub's identity registry (`/devices/{id}`).
    case hub
    /// IoT Hub's device side: MQTT CONNECTs and HTTPS telemetry (`/devices/{id}/messages/...`).
    case hubDevice = "hub-device"
    case central

    /// The surface a request path belongs to; `nil` for the sandbox's own control endpoint.
    static func of(path: String, idScope: String) -> SandboxSurface? {
        let first = path.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        switch first {
        case "aad": return .aad
        case "keyvault": return .keyVault
        case "enrollments", "enrollmentGroups", "registrations": return .dpsService
        case idScope: return .dpsDevice
        case "devices": return path.contains("/messages/") ? .hubDevice : .hub
        case "api": return .central
        default: return nil
        }
    }

    /// Azure's published limit for the surface, applied in quota mode: at most `count` calls per `window` seconds.
    var quota: (count: Int, window: Double)? {
        switch self {
        case .dpsService: return (1_000, 60)  // service operations per minute per DPS instance
        case .dpsDevice: return (1_000, 60)  // device registrations per minute
        case .central: return (20, 1)  // REST calls per second
        case .hub: return (100, 60)  // registry operations per minute per S1 unit
        case .hubDevice: return (100, 1)  // device connections and device-to-cloud sends per second per S1 unit
        case .keyVault: return (1_000, 10)  // HSM key transactions per 10 s
        case .aad: return nil
        }
    }
}

/// One kind of injected failure.
public enum FaultKind: String, CaseIterable, Codable, Sendable {
    /// 429 with Retry-After.
    case throttle = "429"
    case serverError = "500"
    case unavailable = "503"
    /// No answer until after the client's timeout.
    case timeout
    /// The connection is closed without an answer.
    case drop
}

/// The fault settings of one surface.
public struct FaultSettings: Codable, Sendable, Hashable {
    /// The share of calls that fail (0 to 1).
    public var rate: Double = 0
    /// The kinds of failure, chosen at random per failing call.
    public var kinds: [FaultKind] = FaultKind.allCases
    /// Every call fails with 503: the surface is "down".
    public var down: Bool = false
    /// Apply Azure's published limits with 429 + Retry-After.
    public var quota: Bool = false
    /// Another limit than the published one (another tier, a test): calls per window.
    public var quotaLimit: Int?
    /// The window of `quotaLimit`, in seconds (default 60).
    public var quotaWindowSeconds: Double?
    /// How long a `timeout` fault waits before answering 503.
    public var timeoutSeconds: Double = 30
    /// The Retry-After of injected 429 and 503 answers.
    public var retryAfterSeconds: Int = 1

    /// No faults, no quota.
    public init() {}

    /// Checks the values a caller may set.
    func validated() throws -> FaultSettings {
        guard (0...1).contains(rate) else { throw FaultSettingsInvalid(message: "rate must be between 0 and 1") }
        guard !kinds.isEmpty else { throw FaultSettingsInvalid(message: "kinds must name at least one fault") }
        guard (0...600).contains(timeoutSeconds) else {
            throw FaultSettingsInvalid(message: "timeoutSeconds must be 0 to 600")
        }
        guard (0...3600).contains(retryAfterSeconds) else {
            throw FaultSettingsInvalid(message: "retryAfterSeconds must be 0 to 3600")
        }
        if let quotaLimit, quotaLimit < 1 { throw FaultSettingsInvalid(message: "quotaLimit must be at least 1") }
        if let quotaWindowSeconds, !(0.1...3600).contains(quotaWindowSeconds) {
            throw FaultSettingsInvalid(message: "quotaWindowSeconds must be 0.1 to 3600")
        }
        return self
    }

    /// A change: only the fields given replace the current ones.
    public struct Change: Codable, Sendable {
        /// A new failure rate (0 to 1).
        public var rate: Double?
        /// New kinds of failure.
        public var kinds: [FaultKind]?
        /// Take the surface down (every call 503) or bring it back.
        public var down: Bool?
        /// Turn quota mode on or off.
        public var quota: Bool?
        /// A new wait for `timeout` faults.
        public var timeoutSeconds: Double?
        /// A new Retry-After for injected answers.
        public var retryAfterSeconds: Int?
        /// Calls per window in quota mode, instead of the published limit.
        public var quotaLimit: Int?
        /// The window of `quotaLimit`, in seconds.
        public var quotaWindowSeconds: Double?

        /// A change of the given fields; `nil` ones stay as they are.
        public init(
            rate: Double? = nil, kinds: [FaultKind]? = nil, down: Bool? = nil, quota: Bool? = nil,
            timeoutSeconds: Double? = nil, retryAfterSeconds: Int? = nil, quotaLimit: Int? = nil,
            quotaWindowSeconds: Double? = nil
        ) {
            self.quotaLimit = quotaLimit
            self.quotaWindowSeconds = quotaWindowSeconds
            self.rate = rate
            self.kinds = kinds
            self.down = down
            self.quota = quota
            self.timeoutSeconds = timeoutSeconds
            self.retryAfterSeconds = retryAfterSeconds
        }

        func applied(to settings: FaultSettings) throws -> FaultSettings {
            var next = settings
            if let rate { next.rate = rate }
            if let kinds { next.kinds = kinds }
            if let down { next.down = down }
            if let quota { next.quota = quota }
            if let timeoutSeconds { next.timeoutSeconds = timeoutSeconds }
            if let retryAfterSeconds { next.retryAfterSeconds = retryAfterSeconds }
            if let quotaLimit { next.quotaLimit = quotaLimit }
            if let quotaWindowSeconds { next.quotaWindowSeconds = quotaWindowSeconds }
            return try next.validated()
        }
    }
}

struct FaultSettingsInvalid: Error {
    var message: String
}

/// What happens to one call.
enum FaultDecision: Equatable {
    /// Answer with this status (429, 500, 503) and Retry-After.
    case respond(status: Int, retryAfter: Int?, reason: String)
    /// Wait, then answer 503.
    case delay(seconds: Double)
    /// Close the connection without an answer.
    case drop
}

/// Decides, per call, whether a surface fails, and counts what it injected.
public final class FaultInjector: Sendable {
    /// What the sandbox did per surface: its settings and how many calls failed, passed or were refused.
    public struct Report: Codable, Sendable {
        /// The settings of every surface.
        public var settings: [SandboxSurface: FaultSettings]
        /// Calls that got an injected failure or a quota 429, per surface.
        public var injected: [SandboxSurface: Int]
        /// Calls that went through, per surface.
        public var passed: [SandboxSurface: Int]
        /// Calls the sandbox refused as invalid, as Azure would (a 4xx other than 404, 409, 412 and
        /// 429), per surface: a client that follows Azure's rules makes none.
        public var refused: [SandboxSurface: Int]
        /// The last refused calls (`METHOD path → status`), newest last, at most 20.
        public var lastRefusals: [String]
    }

    private struct Window {
        var start: Double
        var count: Int
    }

    private struct State {
        var settings: [SandboxSurface: FaultSettings] = [:]
        var windows: [SandboxSurface: Window] = [:]
        var injected: [SandboxSurface: Int] = [:]
        var passed: [SandboxSurface: Int] = [:]
        var refused: [SandboxSurface: Int] = [:]
        var lastRefusals: [String] = []
    }

    private let state = Mutex(State())
    private let clock: @Sendable () -> Double

    /// An injector with no faults, on the wall clock.
    public init() {
        self.clock = { Date().timeIntervalSince1970 }
    }

    init(clock: @escaping @Sendable () -> Double) {
        self.clock = clock
    }

    /// The settings of `surface`.
    public func settings(_ surface: SandboxSurface) -> FaultSettings {
        state.withLock { $0.settings[surface] ?? FaultSettings() }
    }

    /// Applies `change` to the surfaces given (all when `nil`).
    func apply(_ change: FaultSettings.Change, to surfaces: [SandboxSurface]) throws {
        try state.withLock { state in
            var next = state.settings
            for surface in surfaces {
                next[surface] = try change.applied(to: next[surface] ?? FaultSettings())
            }
            state.settings = next
        }
    }

    /// Settings and counts, for `keygate sandbox faults`.
    public var report: Report {
        state.withLock { state in
            var settings: [SandboxSurface: FaultSettings] = [:]
            for surface in SandboxSurface.allCases { settings[surface] = state.settings[surface] ?? FaultSettings() }
            return Report(
                settings: settings, injected: state.injected, passed: state.passed, refused: state.refused,
                lastRefusals: state.lastRefusals)
        }
    }

    /// Counts a call the sandbox refused as invalid (see ``Report/refused``).
    func recordRefusal(_ surface: SandboxSurface, _ description: String) {
        state.withLock { state in
            state.refused[surface, default: 0] += 1
            state.lastRefusals.append(description)
            if state.lastRefusals.count > 20 { state.lastRefusals.removeFirst() }
        }
    }

    /// The fate of one call on `surface`; `nil`: it goes through.
    func decide(_ surface: SandboxSurface) -> FaultDecision? {
        let now = clock()
        return state.withLock { state -> FaultDecision? in
            let settings = state.settings[surface] ?? FaultSettings()
            let decision = Self.decide(settings, surface: surface, now: now, window: &state.windows[surface])
            if decision == nil {
                state.passed[surface, default: 0] += 1
            } else {
                state.injected[surface, default: 0] += 1
            }
            return decision
        }
    }

    private static func decide(_ settings: FaultSettings, surface: SandboxSurface, now: Double, window: inout Window?)
        -> FaultDecision?
    {
        if settings.down {
            return .respond(status: 503, retryAfter: settings.retryAfterSeconds, reason: "the service is down")
        }
        if settings.quota, let published = surface.quota ?? settings.quotaLimit.map({ ($0, 60) }) {
            let quota = (
                count: settings.quotaLimit ?? published.count, window: settings.quotaWindowSeconds ?? published.window
            )
            var current = window ?? Window(start: now, count: 0)
            if now - current.start >= quota.window { current = Window(start: now, count: 0) }
            if current.count >= quota.count {
                window = current
                let wait = Int((current.start + quota.window - now).rounded(.up))
                return .respond(status: 429, retryAfter: max(1, wait), reason: "quota exceeded")
            }
            current.count += 1
            window = current
        }
        guard settings.rate > 0, Double.random(in: 0..<1) < settings.rate,
            let kind = settings.kinds.randomElement()
        else { return nil }
        switch kind {
        case .throttle: return .respond(status: 429, retryAfter: settings.retryAfterSeconds, reason: "injected")
        case .serverError: return .respond(status: 500, retryAfter: nil, reason: "injected")
        case .unavailable: return .respond(status: 503, retryAfter: settings.retryAfterSeconds, reason: "injected")
        case .timeout: return .delay(seconds: settings.timeoutSeconds)
        case .drop: return .drop
        }
    }
}
