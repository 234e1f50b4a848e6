public import KeygateStore
public import Logging

/// Every service of one Keygate node, wired to one store: what the HTTP routes, the CLI's in-process
/// commands (the demo, benchmarks) and tests call. Nothing outside these services touches the store
/// for a change that must be audited.
public struct KeygateServices: Sendable {
    /// Issuing, revoking and looking up certificates; CRL and OCSP.
    public let certificates: CertificateService
    /// The device API: challenges, registration, enrollment, renewal, status, fork proofs.
    public let enrollment: EnrollmentService
    /// Approval, quarantine, re-authorization, retirement, rotations.
    public let lifecycle: LifecycleService
    /// Groups, the allowlist, the device directory.
    public let fleet: FleetService
    /// Connectors to Azure and the outbox.
    public let connectors: ConnectorService
    /// The audit log.
    public let audit: AuditService
    /// Admin API tokens.
    public let tokens: TokenService
    let secrets: SecretBox?

    /// Wires the services to `store`. `secrets` seals group keys and connector credentials; without
    /// it (a server started without the CA passphrase) those operations are refused.
    /// `anchor` (the audit chain's key and checkpoint file) lets `audit.verify` check the checkpoints too.
    public init(
        store: any ServerStore, certificates: CertificateService, secrets: SecretBox?, anchor: AuditAnchor? = nil,
        deviceRequestsPerSecond: Double? = nil, logger: Logger = Logger(label: "keygate")
    ) {
        self.certificates = certificates
        self.secrets = secrets
        let provisioning = ProvisioningService(store: store)
        let lifecycle = LifecycleService(store: store, certificates: certificates, provisioning: provisioning)
        self.lifecycle = lifecycle
        self.enrollment = EnrollmentService(
            store: store,
            sessions: DeviceSessions(
                store: store, authority: certificates.authority, secrets: secrets, metrics: certificates.metrics,
                logger: logger, guardian: ClientGuard(requestsPerSecond: deviceRequestsPerSecond)),
            certificates: certificates, provisioning: provisioning, lifecycle: lifecycle)
        self.fleet = FleetService(store: store, secrets: secrets)
        self.connectors = ConnectorService(store: store, secrets: secrets)
        self.audit = AuditService(store: store, anchor: anchor)
        self.tokens = TokenService(store: store)
    }
}
