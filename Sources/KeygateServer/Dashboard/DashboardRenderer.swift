import Foundation
import HTTPTypes
import Hummingbird
import KeygateDomain
import KeygatePKI
import Mustache
import NIOCore

/// The dashboard's templates (`Resources/ui/*.mustache`, Mustache: every `{{value}}` is HTML-escaped)
/// and static files, loaded once; pages are rendered with a shared layout.
struct DashboardRenderer: Sendable {
    let library: MustacheLibrary
    let assets: [String: (contentType: String, body: ByteBuffer)]

    static let shared: DashboardRenderer = {
        var library = MustacheLibrary()
        var assets: [String: (String, ByteBuffer)] = [:]
        if let folder = Bundle.module.url(forResource: "ui", withExtension: nil),
            let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path)
        {
            for name in names.sorted() {
                guard let text = try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8) else {
                    continue
                }
                if name.hasSuffix(".mustache") {
                    do {
                        try library.register(text, named: String(name.dropLast(".mustache".count)))
                    } catch {
                        preconditionFailure("dashboard template \(name) does not parse: \(error)")
                    }
                } else if name.hasSuffix(".css") {
                    assets[name] = ("text/css; charset=utf-8", ByteBuffer(string: text))
                } else if name.hasSuffix(".js") {
                    assets[name] = ("text/javascript; charset=utf-8", ByteBuffer(string: text))
                }
            }
        }
        return DashboardRenderer(library: library, assets: assets)
    }()

    /// The navigation, in order.
    static let sections: [(href: String, label: String)] = [
        ("/ui/", "Overview"), ("/ui/devices", "Devices"), ("/ui/groups", "Groups"), ("/ui/allowlist", "Allowlist"),
        ("/ui/connectors", "Connectors"), ("/ui/certificates", "Certificates"), ("/ui/rotations", "Rotations"),
        ("/ui/audit", "Audit"),
    ]

    /// Renders `template` inside the layout.
    func page(
        _ template: String, title: String, viewer: DashboardViewer?, section: String? = nil, notice: String? = nil,
        problem: String? = nil, refresh: Int? = nil, status: HTTPResponse.Status = .ok, _ values: [String: Any] = [:]
    ) -> Response {
        var context = values
        context["title"] = title
        if let notice { context["notice"] = notice }
        if let problem { context["problem"] = problem }
        if let refresh { context["refresh"] = refresh }
        if let viewer {
            context["viewer"] = [
                "name": viewer.name, "role": viewer.role.rawValue, "csrf": viewer.csrf,
                "nav": Self.sections.map { ["href": $0.href, "label": $0.label, "current": $0.label == section] },
            ] as [String: Any]
            context["csrf"] = viewer.csrf
        }
        let html = library.render(Self.clean(context), withTemplate: template) ?? "<!doctype html><title>Keygate</title><p>No template \(template)."
        return Response(
            status: status, headers: Self.headers(contentType: "text/html; charset=utf-8"),
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// Mustache renders every value but `false`, nil and an empty list, and prints a nil held in `Any`
    /// as "nil": an empty string or a missing value becomes ``Blank`` (empty and false), everywhere.
    static func clean(_ value: Any) -> Any {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return Blank() }
            return clean(wrapped)
        }
        switch value {
        case let text as String: return text.isEmpty ? Blank() : text
        case let dictionary as [String: Any]: return dictionary.mapValues(clean)
        case let array as [[String: Any]]: return array.map { clean($0) }
        case let array as [Any]: return array.map(clean)
        default: return value
        }
    }

    /// Security headers of every dashboard answer: no framing, no third-party scripts or styles, no
    /// caching of pages that show the fleet.
    static func headers(contentType: String) -> HTTPFields {
        [
            .contentType: contentType,
            .contentSecurityPolicy:
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            .xFrameOptions: "DENY",
            .xContentTypeOptions: "nosniff",
            .referrerPolicy: "same-origin",
            .cacheControl: "no-store",
        ]
    }
}

/// An empty value: renders as nothing, and a section over it is skipped.
struct Blank: MustacheCustomRenderable {
    var renderText: String { "" }
    var isNull: Bool { true }
}

extension HTTPField.Name {
    static let xFrameOptions = Self("X-Frame-Options")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
}

/// Formatting shared by the pages.
enum DashboardFormat {
    static func time(_ date: Date?) -> String {
        guard let date else { return "—" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return formatter.string(from: date) + " UTC"
    }

    /// "3 min ago", "in 2 days".
    static func relative(_ date: Date?, now: Date = Date()) -> String {
        guard let date else { return "—" }
        let seconds = date.timeIntervalSince(now)
        let magnitude = abs(seconds)
        let text: String
        switch magnitude {
        case ..<60: text = "\(Int(magnitude)) s"
        case ..<3600: text = "\(Int(magnitude / 60)) min"
        case ..<172_800: text = "\(Int(magnitude / 3600)) h"
        default: text = "\(Int(magnitude / 86_400)) days"
        }
        return seconds < 0 ? "\(text) ago" : "in \(text)"
    }

    /// A number with thousands separators.
    static func count(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (index, character) in digits.reversed().enumerated() {
            if index > 0 && index % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return String(out.reversed())
    }

    /// Escapes text placed in server-drawn SVG (Mustache escapes everything else).
    static func xml(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A bar chart of two series over time buckets, drawn as SVG: `series` are (label, CSS class,
    /// counts by bucket start), `buckets` the starts in order.
    static func chart(
        title: String, buckets: [Int64], bucketLabel: (Int64) -> String,
        series: [(label: String, cssClass: String, counts: [Int64: Int])]
    ) -> String {
        let width = 600.0
        let height = 160.0
        let bottom = 20.0
        let top = 14.0
        let highest = max(1, buckets.map { bucket in series.map { $0.counts[bucket] ?? 0 }.reduce(0, +) }.max() ?? 1)
        let slot = width / Double(max(1, buckets.count))
        var svg = """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(xml(title))" preserveAspectRatio="none">
            <title>\(xml(title))</title>
            """
        for (index, bucket) in buckets.enumerated() {
            var y = height - bottom
            var tooltip = bucketLabel(bucket)
            for entry in series {
                let value = entry.counts[bucket] ?? 0
                tooltip += " · \(entry.label): \(value)"
                guard value > 0 else { continue }
                let barHeight = (height - bottom - top) * Double(value) / Double(highest)
                y -= barHeight
                svg +=
                    "<rect class=\"\(entry.cssClass)\" x=\"\(n(Double(index) * slot + 1))\" y=\"\(n(y))\" width=\"\(n(max(1, slot - 2)))\" height=\"\(n(barHeight))\"></rect>"
            }
            svg +=
                "<rect class=\"hit\" x=\"\(n(Double(index) * slot))\" y=\"0\" width=\"\(n(slot))\" height=\"\(n(height - bottom))\"><title>\(xml(tooltip))</title></rect>"
        }
        svg += "<text class=\"axis\" x=\"2\" y=\"11\">\(highest)</text>"
        if let first = buckets.first, let last = buckets.last {
            svg += "<text class=\"axis\" x=\"2\" y=\"\(Int(height - 5))\">\(xml(bucketLabel(first)))</text>"
            svg +=
                "<text class=\"axis\" x=\"\(Int(width - 2))\" y=\"\(Int(height - 5))\" text-anchor=\"end\">\(xml(bucketLabel(last)))</text>"
        }
        return svg + "</svg>"
    }

    /// A coordinate with one decimal.
    private static func n(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}
