import Foundation

/// A one-line progress bar on standard error, drawn only when standard error is a terminal.
final class ProgressBar: @unchecked Sendable {
    // Used from one task at a time (the command's own loop).
    private let total: Int
    private let label: String
    private let enabled: Bool
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var done = 0

    init(total: Int, label: String) {
        self.total = max(total, 1)
        self.label = label
        self.enabled = isatty(STDERR_FILENO) == 1
    }

    func update(_ done: Int) {
        guard enabled, Date().timeIntervalSince(lastDraw) > 0.1 || done >= total else { return }
        lastDraw = Date()
        let width = 30
        let filled = min(width, done * width / total)
        let rate = Double(done) / max(Date().timeIntervalSince(started), 0.001)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(
            Data(String(format: "\r[%@] %d/%d %@ (%.0f/s)", bar, done, total, label, rate).utf8))
    }

    /// One more done.
    func advance() {
        done += 1
        update(done)
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
