import Foundation
import Synchronization

/// Many simulated devices in one process, each through the whole flow (`DeviceRunner`), at most
/// `concurrency` at once; records when each reached each step. `keygate-agent simulate` and
/// `keygate demo` use it.
public struct FleetSimulator: Sendable {
    /// How many devices to simulate.
    public let count: Int
    /// How many devices run at once (at least 1).
    public let concurrency: Int
    /// The options every device runs with.
    public let options: DeviceRunner.Options
    let makeEnrollment: @Sendable (Int) throws -> Enrollment
    let onDeviceDone: @Sendable (Int, Bool) -> Void

    /// Creates a simulator; `makeEnrollment` builds device `i`'s enrollment, `onDeviceDone` hears each end.
    public init(
        count: Int, concurrency: Int, options: DeviceRunner.Options,
        makeEnrollment: @escaping @Sendable (Int) throws -> Enrollment,
        onDeviceDone: @escaping @Sendable (Int, Bool) -> Void = { _, _ in }
    ) {
        self.count = count
        self.concurrency = max(1, concurrency)
        self.options = options
        self.makeEnrollment = makeEnrollment
        self.onDeviceDone = onDeviceDone
    }

    /// What happened to the fleet.
    public struct Report: Sendable {
        /// How many devices were simulated.
        public var devices: Int
        /// Per device, the steps in the order reached, with the time since the device started.
        public var steps: [Int: [(DeviceRunner.Step, Duration)]]
        /// How many devices failed.
        public var failures: Int
        /// The first failure's error text; `nil` when none failed.
        public var firstError: String?
        /// The time the whole fleet took.
        public var elapsed: Duration

        /// Milliseconds to reach `step`, for every device that reached it.
        public func times(of step: DeviceRunner.Step) -> [Double] {
            steps.values.compactMap { list in list.first { $0.0 == step }.map { Self.milliseconds($0.1) } }
        }

        /// The `p` percentile (0 to 1) of the milliseconds to reach `step`; 0 when no device reached it.
        public func percentile(_ step: DeviceRunner.Step, _ p: Double) -> Double {
            let sorted = times(of: step).sorted()
            return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }

        /// The first device's timeline and, for all, how many reached each step with p50/p99.
        public var summary: String {
            var lines = ["Timeline of the first device:"]
            for (step, at) in steps[0] ?? [] {
                lines.append(String(format: "  %8.1f ms  %@", Self.milliseconds(at), step.rawValue))
            }
            lines.append("")
            lines.append("All \(devices) devices (time from the device's start):")
            let width = DeviceRunner.Step.allCases.map(\.rawValue.count).max() ?? 40
            lines.append(
                "STEP".padding(toLength: width + 2, withPad: " ", startingAt: 0) + "REACHED    P50 MS  P99 MS")
            for step in DeviceRunner.Step.allCases {
                lines.append(
                    step.rawValue.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                        + "\(times(of: step).count)/\(devices)".padding(toLength: 11, withPad: " ", startingAt: 0)
                        + String(format: "%6.0f  %6.0f", percentile(step, 0.5), percentile(step, 0.99)))
            }
            if devices >= 100, let last = DeviceRunner.Step.allCases.last {
                // Devices start in index order: a slower last tenth than first shows a cost that grows.
                lines.append("")
                lines.append("By tenth of the fleet, in start order (\(last.rawValue)):")
                lines.append("TENTH  DEVICES          P50 MS  P99 MS")
                for tenth in 0..<10 {
                    let range = (devices * tenth / 10)..<(devices * (tenth + 1) / 10)
                    let times = range.compactMap { index in
                        steps[index]?.first { $0.0 == last }.map { Self.milliseconds($0.1) }
                    }.sorted()
                    func at(_ p: Double) -> Double { times.isEmpty ? 0 : times[min(times.count - 1, Int(Double(times.count) * p))] }
                    lines.append(
                        String(format: "%5d  %-15@  %6.0f  %6.0f", tenth + 1, "\(range.lowerBound)-\(range.upperBound - 1)", at(0.5), at(0.99)))
                }
            }
            let seconds = Self.milliseconds(elapsed) / 1000
            lines.append(
                String(
                    format: "%d devices in %.1f s: %.1f devices/s, %d failed", devices, seconds,
                    Double(devices - failures) / max(seconds, 0.001), failures)
                    + (firstError.map { " (first: \($0))" } ?? ""))
            return lines.joined(separator: "\n")
        }

        static func milliseconds(_ duration: Duration) -> Double {
            let (seconds, attoseconds) = duration.components
            return Double(seconds) * 1000 + Double(attoseconds) / 1e15
        }
    }

    /// Runs every device through the flow, at most `concurrency` at once; never throws (failures are counted).
    public func run() async -> Report {
        let steps = StepTimes()
        let started = ContinuousClock.now
        var failures = 0
        var firstError: String?
        await withTaskGroup(of: (Int, String?).self) { group in
            var next = 0
            func launch(_ index: Int) {
                group.addTask {
                    let begin = ContinuousClock.now
                    do {
                        let runner = DeviceRunner(
                            enrollment: try makeEnrollment(index), options: options,
                            onStep: { step, at in
                                steps.record { steps in
                                    // The first time counts (a reconnect reports `connected` again).
                                    if steps[index]?.contains(where: { $0.0 == step }) != true {
                                        steps[index, default: []].append((step, at - begin))
                                    }
                                }
                            })
                        try await runner.run()
                        return (index, nil)
                    } catch {
                        return (index, "\(error)")
                    }
                }
            }
            while next < min(concurrency, count) {
                launch(next)
                next += 1
            }
            while let (index, error) = await group.next() {
                if let error {
                    failures += 1
                    if firstError == nil { firstError = error }
                }
                onDeviceDone(index, error == nil)
                if next < count {
                    launch(next)
                    next += 1
                }
            }
        }
        return Report(
            devices: count, steps: steps.all, failures: failures, firstError: firstError,
            elapsed: ContinuousClock.now - started)
    }
}

/// When each device reached each step, filled from the devices' tasks.
private final class StepTimes: Sendable {
    private let steps = Mutex<[Int: [(DeviceRunner.Step, Duration)]]>([:])

    func record(_ body: (inout [Int: [(DeviceRunner.Step, Duration)]]) -> Void) { steps.withLock { body(&$0) } }

    var all: [Int: [(DeviceRunner.Step, Duration)]] { steps.withLock { $0 } }
}
