import Foundation
import KeygateDomain
import KeygatePKI
import Testing

/// The device state machine: every allowed move, and that nothing leaves `retired`.
@Suite struct DeviceStateMachineTests {
    typealias S = Device.State

    @Test func theOnboardingPathLeadsToEnrolled() {
        #expect(S.allowlisted.apply(.registered) == .registered)
        #expect(S.registered.apply(.enrolled) == .enrolled)
        #expect(S.allowlisted.apply(.enrolled) == .enrolled, "x509 and symmetric-key devices enroll at once")
        #expect(S.registered.apply(.awaitApproval) == .pendingApproval)
        #expect(S.pendingApproval.apply(.awaitApproval) == .pendingApproval, "asking again keeps it waiting")
        #expect(S.pendingApproval.apply(.approved) == .approved)
        #expect(S.approved.apply(.enrolled) == .enrolled)
        #expect(S.enrolled.apply(.enrolled) == .enrolled, "a renewal keeps the device enrolled")
    }

    @Test func quarantineAndRetirementApplyFromAnyLiveState() {
        for state in S.allCases where state != .retired {
            #expect(state.apply(.quarantined) == .quarantined, "\(state)")
            #expect(state.apply(.retired) == .retired, "\(state)")
        }
        #expect(S.quarantined.apply(.reauthorized) == .registered)
    }

    @Test func nothingLeavesRetiredAndShortcutsAreRefused() {
        for event in [Device.Event.registered, .awaitApproval, .approved, .enrolled, .quarantined, .reauthorized, .retired] {
            #expect(S.retired.apply(event) == nil, "\(event)")
        }
        #expect(S.allowlisted.apply(.approved) == nil, "approval needs a pending request")
        #expect(S.pendingApproval.apply(.registered) == nil)
        #expect(S.enrolled.apply(.reauthorized) == nil, "only a quarantined device is re-authorized")
        #expect(S.quarantined.apply(.enrolled) == nil, "a quarantined device cannot enroll")
    }

    @Test func onlyLiveDevicesOpenSessions() {
        #expect(S.allCases.filter { !$0.acceptsSessions } == [.quarantined, .retired])
    }
}

/// Group policies: validation names what is wrong, and the renewal window is stable per certificate.
@Suite struct GroupPolicyTests {
    func refusal(_ change: (inout Group.Policy) -> Void) -> String? {
        var policy = Group.Policy()
        change(&policy)
        do {
            try policy.validate()
            return nil
        } catch let error as KeygateError {
            #expect(error.code == .invalidPolicy)
            return error.message
        } catch {
            return "\(error)"
        }
    }

    @Test func theDefaultPolicyIsValid() throws {
        try Group.Policy().validate()
    }

    @Test func eachBadFieldIsNamed() {
        #expect(refusal { $0.attestationMethods = [] }?.contains("at least one attestation method") == true)
        #expect(refusal { $0.attestationMethods = ["tpm"] }?.contains("unknown attestation method 'tpm'") == true)
        #expect(refusal { $0.minimumAssurance = 4 }?.contains("minimumAssurance") == true)
        #expect(refusal { $0.keyAlgorithms = ["dsa"] }?.contains("unknown key algorithm 'dsa'") == true)
        #expect(refusal { $0.validityDays = 0 }?.contains("validityDays") == true)
        #expect(refusal { $0.validitySeconds = 59 }?.contains("validitySeconds") == true)
        #expect(refusal { $0.quarantineAction = "delete" }?.contains("quarantineAction") == true)
        #expect(refusal { $0.renewAfterFraction = 1 }?.contains("renewAfterFraction") == true)
        #expect(refusal { $0.approval = "sometimes" }?.contains("approval") == true)
        #expect(refusal { $0.attestationMethods = ["x509"] }?.contains("bootstrap CA") == true)
        #expect(refusal { $0.attestationMethods = ["symmetric-key"] }?.contains("group key") == true)
    }

    @Test func validitySecondsOverridesDays() {
        var policy = Group.Policy()
        policy.validityDays = 30
        #expect(policy.validity == 30 * 86_400)
        policy.validitySeconds = 600
        #expect(policy.validity == 600)
    }

    @Test func theRenewalWindowOpensAfterTheFractionWithAStableJitterOfAtMostATenth() {
        var policy = Group.Policy()
        policy.renewAfterFraction = 0.5
        let issued = Date(timeIntervalSince1970: 1_800_000_000)
        let expires = issued + 1000
        var opens: Set<Double> = []
        for serial in (0..<50).map({ String(format: "%04x", $0) }) {
            let at = policy.renewalOpens(issuedAt: issued, notAfter: expires, serial: serial)
            #expect(at >= issued + 500 && at <= issued + 600, "\(serial): \(at.timeIntervalSince(issued))")
            #expect(at == policy.renewalOpens(issuedAt: issued, notAfter: expires, serial: serial))
            opens.insert(at.timeIntervalSince(issued))
        }
        #expect(opens.count > 25, "the jitter spreads renewals")
        policy.renewAfterFraction = 0.99
        #expect(
            policy.renewalOpens(issuedAt: issued, notAfter: expires, serial: "01") <= issued + 950,
            "never later than 95 % of the lifetime")
    }
}
