import Foundation
import KeygateHTTP
import KeygateServer
import KeygateTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Idle and half-open connections are closed, and a host cannot hold more than its share of them.
@Suite struct ConnectionLimitTests {
    /// A raw TCP connection to 127.0.0.1:`port` (reads never block: see ``closedByServer(_:within:)``).
    static func connect(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        return fd
    }

    /// Whether the server closes the connection (end of stream) within `seconds`. Polls without
    /// blocking: a test must not hold one of the few threads the other tests' async work runs on.
    static func closedByServer(_ fd: Int32, within seconds: Double = 10) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            var byte: UInt8 = 0
            let read = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            if read == 0 { return true }
            if read < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// The first bytes of the answer to what was sent on `fd`, waiting up to `seconds`.
    static func answer(_ fd: Int32, within seconds: Double = 10) async -> String {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var buffer = [UInt8](repeating: 0, count: 64)
        while ContinuousClock.now < deadline {
            let read = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if read > 0 { return String(decoding: buffer.prefix(read), as: UTF8.self) }
            if read == 0 { return "" }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return ""
    }

    @Test func connectionsOverThePerAddressCapAreClosedAtOnce() async throws {
        let kg = try await TestKeygate.make()
        let server = kg.server.with { $0.maxConnectionsPerAddress = 3 }
        let running = try await BackgroundServer.start(server.run)
        defer { Task { await running.stop() } }
        let held = (0..<3).map { _ in Self.connect(running.ready.http) }
        try await Task.sleep(for: .milliseconds(300))
        let extra = (0..<2).map { _ in Self.connect(running.ready.http) }
        // The idle timeout is 60 s here: only the cap closes these.
        for fd in extra { #expect(await Self.closedByServer(fd), "over the per-address cap: closed at once") }
        for fd in held { #expect(!(await Self.closedByServer(fd, within: 0.5)), "the first three stay open") }
        for fd in held + extra { close(fd) }
        let metrics = kg.server.services.certificates.metrics.render()
        #expect(
            metrics.contains(#"keygate_connections_refused_total{listener="http",reason="address"} 2"#)
                || metrics.contains(#"keygate_connections_refused_total{reason="address",listener="http"} 2"#),
            "\(metrics)")
    }

    @Test func idleAndHalfOpenConnectionsAreClosed() async throws {
        let kg = try await TestKeygate.make()
        let server = kg.server.with { $0.idleTimeoutSeconds = 1 }
        let running = try await BackgroundServer.start(server.run)
        defer { Task { await running.stop() } }
        let idle = Self.connect(running.ready.http)
        // Half a request head on the HTTP listener, half a TLS ClientHello on the HTTPS one.
        let halfHead = Self.connect(running.ready.http)
        let head = Array("POST /device/v1/challenge HTTP/1.1\r\nHost: x\r\nContent-".utf8)
        _ = head.withUnsafeBytes { send(halfHead, $0.baseAddress, head.count, 0) }
        let halfHello = Self.connect(running.ready.https)
        let hello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]
        _ = hello.withUnsafeBytes { send(halfHello, $0.baseAddress, hello.count, 0) }
        #expect(await Self.closedByServer(idle), "an idle connection is closed")
        #expect(await Self.closedByServer(halfHead), "an unfinished request head is closed")
        #expect(await Self.closedByServer(halfHello), "an unfinished TLS handshake is closed")
        for fd in [idle, halfHead, halfHello] { close(fd) }
        // A client that speaks is served.
        let fresh = Self.connect(running.ready.http)
        let get = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        _ = get.withUnsafeBytes { send(fresh, $0.baseAddress, get.count, 0) }
        let answer = await Self.answer(fresh)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        close(fresh)
    }
}
