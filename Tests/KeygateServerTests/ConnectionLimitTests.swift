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
    /// A raw TCP connection to 127.0.0.1:`port` that waits at most `timeout` seconds for data.
    static func connect(_ port: Int, timeout: Int = 4) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var wait = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        return fd
    }

    /// Whether the server closed the connection (end of stream) before the socket's timeout.
    static func closedByServer(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    @Test func connectionsOverTheCapsAreClosedAndIdleOnesTimeOut() async throws {
        let kg = try await TestKeygate.make()
        let server = kg.server.with {
            $0.maxConnectionsPerAddress = 3
            $0.idleTimeoutSeconds = 1
        }
        let running = try await BackgroundServer.start(server.run)
        defer { Task { await running.stop() } }
        let started = ContinuousClock.now
        let held = (0..<3).map { _ in Self.connect(running.ready.http) }
        try await Task.sleep(for: .milliseconds(100))
        let extra = (0..<2).map { _ in Self.connect(running.ready.http, timeout: 1) }
        #expect(extra.allSatisfy(Self.closedByServer), "over the per-address cap: closed at once")
        #expect(ContinuousClock.now - started < .seconds(1))
        // The held ones said nothing: closed by the idle timeout, a second or two later.
        #expect(held.allSatisfy(Self.closedByServer), "idle connections are closed")
        // A half-sent TLS ClientHello on the HTTPS listener is closed too.
        let half = Self.connect(running.ready.https)
        let partial: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]
        _ = partial.withUnsafeBytes { send(half, $0.baseAddress, partial.count, 0) }
        #expect(Self.closedByServer(half), "an unfinished handshake is closed")
        for fd in held + extra + [half] { close(fd) }
        let metrics = kg.server.services.certificates.metrics.render()
        #expect(metrics.contains(#"keygate_connections_refused_total{listener="http",reason="address"} 2"#)
            || metrics.contains(#"keygate_connections_refused_total{reason="address",listener="http"} 2"#), "\(metrics)")
        // A well-behaved client still gets in.
        let fresh = Self.connect(running.ready.http)
        let get = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        _ = get.withUnsafeBytes { send(fresh, $0.baseAddress, get.count, 0) }
        var answer = [UInt8](repeating: 0, count: 64)
        let read = recv(fresh, &answer, answer.count, 0)
        #expect(read > 12 && String(decoding: answer.prefix(12), as: UTF8.self) == "HTTP/1.1 200")
        close(fresh)
    }
}
