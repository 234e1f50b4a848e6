/// MQTT 3.1.1 control packets (OASIS MQTT Version 3.1.1, section 3), the subset Azure IoT speaks:
/// everything but the QoS 2 handshake (PUBREC, PUBREL, PUBCOMP), which Azure does not support.
public enum MQTTPacket: Sendable, Hashable {
    case connect(Connect)
    case connack(ConnAck)
    case publish(Publish)
    case puback(packetID: UInt16)
    case subscribe(Subscribe)
    case suback(SubAck)
    case unsubscribe(Unsubscribe)
    case unsuback(packetID: UInt16)
    case pingreq
    case pingresp
    case disconnect

    /// CONNECT (3.1): the client's session request.
    public struct Connect: Sendable, Hashable {
        public var clientID: String
        public var username: String?
        public var password: [UInt8]?
        public var keepAlive: UInt16
        public var cleanSession: Bool
        public var will: Will?

        public struct Will: Sendable, Hashable {
            public var topic: String
            public var message: [UInt8]
            public var qos: UInt8
            public var retain: Bool

            public init(topic: String, message: [UInt8], qos: UInt8, retain: Bool) {
                self.topic = topic
                self.message = message
                self.qos = qos
                self.retain = retain
            }
        }

        public init(
            clientID: String, username: String? = nil, password: [UInt8]? = nil, keepAlive: UInt16 = 60,
            cleanSession: Bool = true, will: Will? = nil
        ) {
            self.clientID = clientID
            self.username = username
            self.password = password
            self.keepAlive = keepAlive
            self.cleanSession = cleanSession
            self.will = will
        }
    }

    /// CONNACK (3.2). Return codes: 0 accepted, 1 unacceptable protocol version, 2 identifier
    /// rejected, 3 server unavailable, 4 bad user name or password, 5 not authorized.
    public struct ConnAck: Sendable, Hashable {
        public var sessionPresent: Bool
        public var returnCode: UInt8

        public init(sessionPresent: Bool = false, returnCode: UInt8) {
            self.sessionPresent = sessionPresent
            self.returnCode = returnCode
        }

        public static let accepted: UInt8 = 0
        public static let notAuthorized: UInt8 = 5
    }

    /// PUBLISH (3.3).
    public struct Publish: Sendable, Hashable {
        public var topic: String
        public var payload: [UInt8]
        public var qos: UInt8
        public var retain: Bool
        public var dup: Bool
        /// Present when `qos > 0`.
        public var packetID: UInt16?

        public init(
            topic: String, payload: [UInt8], qos: UInt8 = 0, retain: Bool = false, dup: Bool = false,
            packetID: UInt16? = nil
        ) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
            self.dup = dup
            self.packetID = packetID
        }
    }

    /// SUBSCRIBE (3.8): topic filters with their requested QoS.
    public struct Subscribe: Sendable, Hashable {
        public var packetID: UInt16
        public var filters: [Filter]

        public struct Filter: Sendable, Hashable {
            public var topic: String
            public var qos: UInt8

            public init(topic: String, qos: UInt8) {
                self.topic = topic
                self.qos = qos
            }
        }

        public init(packetID: UInt16, filters: [Filter]) {
            self.packetID = packetID
            self.filters = filters
        }
    }

    /// SUBACK (3.9): the granted QoS per filter, or 0x80 for failure.
    public struct SubAck: Sendable, Hashable {
        public var packetID: UInt16
        public var returnCodes: [UInt8]

        public init(packetID: UInt16, returnCodes: [UInt8]) {
            self.packetID = packetID
            self.returnCodes = returnCodes
        }
    }

    /// UNSUBSCRIBE (3.10).
    public struct Unsubscribe: Sendable, Hashable {
        public var packetID: UInt16
        public var topics: [String]

        public init(packetID: UInt16, topics: [String]) {
            self.packetID = packetID
            self.topics = topics
        }
    }
}

/// Why bytes are not a valid MQTT 3.1.1 packet. Any of these closes the connection.
public struct MQTTError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case malformedPacket
        case packetTooLarge
        case unsupportedPacketType
        case unsupportedProtocol
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
