/// MQTT 3.1.1 control packets (OASIS MQTT Version 3.1.1, section 3), the subset Azure IoT speaks:
/// everything but the QoS 2 handshake (PUBREC, PUBREL, PUBCOMP), which Azure does not support.
public enum MQTTPacket: Sendable, Hashable {
    /// CONNECT: the client opens a session.
    case connect(Connect)
    /// CONNACK: the server's answer to CONNECT.
    case connack(ConnAck)
    /// PUBLISH: an application message, in either direction.
    case publish(Publish)
    /// PUBACK: acknowledges a QoS 1 PUBLISH.
    case puback(packetID: UInt16)
    /// SUBSCRIBE: the client asks for topic filters.
    case subscribe(Subscribe)
    /// SUBACK: the server's answer to SUBSCRIBE.
    case suback(SubAck)
    /// UNSUBSCRIBE: the client drops topic filters.
    case unsubscribe(Unsubscribe)
    /// UNSUBACK: acknowledges an UNSUBSCRIBE.
    case unsuback(packetID: UInt16)
    /// PINGREQ: the client's keep-alive.
    case pingreq
    /// PINGRESP: the server's answer to PINGREQ.
    case pingresp
    /// DISCONNECT: the client closes the session cleanly.
    case disconnect

    /// CONNECT (3.1): the client's session request.
    public struct Connect: Sendable, Hashable {
        /// The client identifier (Azure IoT: the device ID).
        public var clientID: String
        /// The user name; `nil`: none sent.
        public var username: String?
        /// The password bytes (Azure IoT: a SAS token); `nil`: none sent (X.509 authentication).
        public var password: [UInt8]?
        /// The keep-alive interval in seconds; 0 turns it off.
        public var keepAlive: UInt16
        /// Whether the server discards any earlier session state.
        public var cleanSession: Bool
        /// The message the server publishes if the client disconnects uncleanly; `nil`: none.
        public var will: Will?

        /// A will message.
        public struct Will: Sendable, Hashable {
            /// The topic to publish the will on.
            public var topic: String
            /// The will's payload.
            public var message: [UInt8]
            /// The will's QoS (0 or 1).
            public var qos: UInt8
            /// Whether the server retains the will message.
            public var retain: Bool

            /// Creates a will message.
            public init(topic: String, message: [UInt8], qos: UInt8, retain: Bool) {
                self.topic = topic
                self.message = message
                self.qos = qos
                self.retain = retain
            }
        }

        /// Creates a CONNECT packet; by default a clean session with a 60-second keep-alive.
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
        /// Whether the server resumed a stored session.
        public var sessionPresent: Bool
        /// The return code; ``accepted`` (0) on success.
        public var returnCode: UInt8

        /// Creates a CONNACK packet.
        public init(sessionPresent: Bool = false, returnCode: UInt8) {
            self.sessionPresent = sessionPresent
            self.returnCode = returnCode
        }

        /// Return code 0: connection accepted.
        public static let accepted: UInt8 = 0
        /// Return code 5: not authorized.
        public static let notAuthorized: UInt8 = 5
    }

    /// PUBLISH (3.3).
    public struct Publish: Sendable, Hashable {
        /// The topic name (no wildcards).
        public var topic: String
        /// The application message.
        public var payload: [UInt8]
        /// The QoS: 0 (at most once) or 1 (at least once).
        public var qos: UInt8
        /// Whether the server retains the message for future subscribers.
        public var retain: Bool
        /// Whether this is a redelivery of an earlier attempt.
        public var dup: Bool
        /// Present when `qos > 0`.
        public var packetID: UInt16?

        /// Creates a PUBLISH packet; by default QoS 0, not retained.
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
        /// The packet identifier SUBACK answers with.
        public var packetID: UInt16
        /// The topic filters to subscribe to.
        public var filters: [Filter]

        /// A topic filter (wildcards allowed) and the QoS requested for it.
        public struct Filter: Sendable, Hashable {
            /// The topic filter.
            public var topic: String
            /// The requested maximum QoS.
            public var qos: UInt8

            /// Creates a filter.
            public init(topic: String, qos: UInt8) {
                self.topic = topic
                self.qos = qos
            }
        }

        /// Creates a SUBSCRIBE packet.
        public init(packetID: UInt16, filters: [Filter]) {
            self.packetID = packetID
            self.filters = filters
        }
    }

    /// SUBACK (3.9): the granted QoS per filter, or 0x80 for failure.
    public struct SubAck: Sendable, Hashable {
        /// The identifier of the SUBSCRIBE being answered.
        public var packetID: UInt16
        /// The granted QoS per filter, in request order; 0x80 for a refused filter.
        public var returnCodes: [UInt8]

        /// Creates a SUBACK packet.
        public init(packetID: UInt16, returnCodes: [UInt8]) {
            self.packetID = packetID
            self.returnCodes = returnCodes
        }
    }

    /// UNSUBSCRIBE (3.10).
    public struct Unsubscribe: Sendable, Hashable {
        /// The packet identifier UNSUBACK answers with.
        public var packetID: UInt16
        /// The topic filters to unsubscribe from.
        public var topics: [String]

        /// Creates an UNSUBSCRIBE packet.
        public init(packetID: UInt16, topics: [String]) {
            self.packetID = packetID
            self.topics = topics
        }
    }
}

/// Why bytes are not a valid MQTT 3.1.1 packet. Any of these closes the connection.
public struct MQTTError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of protocol error.
    public enum Code: String, Sendable, Hashable {
        /// The bytes break the packet format (bad flags, lengths, strings).
        case malformedPacket
        /// The packet is larger than the decoder's maximum size.
        case packetTooLarge
        /// A packet type outside the supported subset (the QoS 2 handshake).
        case unsupportedPacketType
        /// CONNECT names another protocol or level than MQTT 3.1.1 (level 4).
        case unsupportedProtocol
    }

    /// The kind of error.
    public var code: Code
    /// What exactly is wrong, for logs.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`.
    public var description: String { "\(code.rawValue): \(message)" }
}
