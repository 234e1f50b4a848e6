public import Foundation
public import KeygateDomain
import KeygateStore
public import Logging
public import ServiceLifecycle

/// Finds device certificates close to expiry that no renewal replaced: marks each once (with an
/// audit event `certificate.expiring`), and keeps `keygate_certificates_expiring` current.
/// `keygate cert list --expiring 7d` lists the same certificates.
public struct ExpiryScanner: Service {
    let service: CertificateService
    /// How close to expiry a certificate must be to count.
    let window: TimeInterval
    let interval: Duration
    let logger: Logger

    public init(
        service: CertificateService, window: TimeInterval = 7 * 86_400, interval: Duration = .seconds(60),
        logger: Logger
    ) {
        self.service = service
        self.window = window
        self.interval = interval
        self.logger = logger
    }

    /// One pass; returns the certificates marked by it and the count of all marked.
    @discardableResult
    public func scan(now: Date = Date()) async throws -> (newlyFlagged: [CertificateRecord], flagged: Int) {
        let result = try await service.store.flagExpiring(before: now + window, now: now)
        for record in result.newlyFlagged {
            _ = try await service.store.appendAudit(
                .init(
                    actor: "system", action: "certificate.expiring", subject: record.serial,
                    details: [
                        "deviceId": record.deviceID ?? "",
                        "notAfter": ISO8601DateFormatter().string(from: record.notAfter),
                    ]))
        }
        service.metrics.expiringObserved(result.flagged)
        if !result.newlyFlagged.isEmpty {
            logger.notice(
                "certificates close to expiry and not renewed",
                metadata: ["new": "\(result.newlyFlagged.count)", "total": "\(result.flagged)"])
        }
        return result
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await scan()
                } catch {
                    logger.warning("expiry scan failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}

/// Signs kept OCSP answers again before they go stale.
public struct OCSPRefreshService: Service {
    let service: CertificateService
    let interval: Duration
    let logger: Logger

    public init(service: CertificateService, interval: Duration = .seconds(30), logger: Logger) {
        self.service = service
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let refreshed = await service.refreshOCSPAnswers()
                if refreshed > 0 { logger.debug("OCSP answers signed again", metadata: ["count": "\(refreshed)"]) }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
