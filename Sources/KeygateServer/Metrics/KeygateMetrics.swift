import Foundation
import Metrics
public import Prometheus

/// The server's metrics, exposed at `/metrics` in Prometheus text format.
///
/// Each server instance owns its registry (no global bootstrap), so tests can run several.
public final class KeygateMetrics: Sendable {
    /// The registry the metrics are kept in; ``render()`` emits it.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    let issuanceDuration: Metrics.Timer
    let crlAge: Metrics.Gauge
    let crlEntries: Metrics.Gauge
    let ocspCached: Metrics.Counter
    let ocspSigned: Metrics.Counter
    let ocspError: Metrics.Counter
    let expiringCertificates: Metrics.Gauge

    /// Creates a fresh registry and registers Keygate's metrics in it.
    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        self.factory = factory
        issuanceDuration = Metrics.Timer(label: "keygate_issuance_duration_seconds", factory: factory)
        crlAge = Metrics.Gauge(label: "keygate_crl_age_seconds", factory: factory)
        crlEntries = Metrics.Gauge(label: "keygate_crl_entries", factory: factory)
        func ocsp(_ status: String, _ source: String) -> Metrics.Counter {
            Counter(
                label: "keygate_ocsp_responses_total", dimensions: [("status", status), ("source", source)],
                factory: factory)
        }
        ocspCached = ocsp("successful", "presigned")
        ocspSigned = ocsp("successful", "signed")
        ocspError = ocsp("error", "none")
        expiringCertificates = Metrics.Gauge(label: "keygate_certificates_expiring", factory: factory)
    }

    func certificateIssued(profile: String, duration: Duration) {
        Counter(label: "keygate_certificates_issued_total", dimensions: [("profile", profile)], factory: factory)
            .increment()
        issuanceDuration.recordNanoseconds(duration.nanoseconds)
    }

    func certificateRevoked(reason: String) {
        Counter(label: "keygate_revocations_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func issuanceFailed(code: String) {
        Counter(label: "keygate_issuance_failures_total", dimensions: [("code", code)], factory: factory).increment()
    }

    func crlObserved(age: TimeInterval, entries: Int? = nil) {
        crlAge.record(age)
        if let entries { crlEntries.record(entries) }
    }

    func ocspAnswered(cached: Bool, successful: Bool) {
        (successful ? (cached ? ocspCached : ocspSigned) : ocspError).increment()
    }

    /// Certificates close to expiry that no newer certificate replaced (the expiry scanner's count).
    func expiringObserved(_ count: Int) {
        expiringCertificates.record(count)
    }

    func outboxDelivered(connector: String, action: String) {
        Counter(
            label: "keygate_outbox_delivered_total", dimensions: [("connector", connector), ("action", action)],
            factory: factory
        ).increment()
    }

    /// A failed delivery attempt; `deadLetter` when the item stopped there.
    func outboxFailed(connector: String, code: String, deadLetter: Bool) {
        Counter(
            label: "keygate_outbox_failures_total", dimensions: [("connector", connector), ("code", code)],
            factory: factory
        ).increment()
        if deadLetter {
            Counter(
                label: "keygate_outbox_dead_letters_total", dimensions: [("connector", connector), ("code", code)],
                factory: factory
            ).increment()
        }
    }

    /// A device API request refused before any session (an ID not on the allowlist, a throttled caller).
    func deviceRefused(reason: String) {
        Counter(label: "keygate_device_refusals_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    /// An OCSP request that wanted an answer signed on the spot past the budget.
    func ocspOverBudget() {
        Counter(label: "keygate_ocsp_over_budget_total", factory: factory).increment()
    }

    /// A connection closed at once because a listener's cap was reached (`reason`: listener, address).
    func connectionRefused(listener: String, reason: String) {
        Counter(
            label: "keygate_connections_refused_total", dimensions: [("listener", listener), ("reason", reason)],
            factory: factory
        ).increment()
    }

    func renewal(kind: String) {
        Counter(label: "keygate_renewals_total", dimensions: [("kind", kind)], factory: factory).increment()
    }

    /// The Prometheus text exposition.
    public func render() -> String { registry.emitToString() }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
