import Foundation
import SwiftASN1

/// `Time` values for certificates, CRLs and OCSP (RFC 5280 §4.1.2.5): UTCTime through 2049,
/// GeneralizedTime from 2050, whole seconds, always UTC.
enum DERTime {
    static func components(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return (c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    static func generalizedTime(_ date: Date) throws -> GeneralizedTime {
        let c = components(date)
        return try GeneralizedTime(
            year: c.year, month: c.month, day: c.day, hours: c.hour, minutes: c.minute, seconds: c.second,
            fractionalSeconds: 0)
    }

    /// Appends a `Time` CHOICE.
    static func appendTime(_ date: Date, into coder: inout DER.Serializer) throws {
        let c = components(date)
        if c.year < 2050 {
            try coder.serialize(
                UTCTime(year: c.year, month: c.month, day: c.day, hours: c.hour, minutes: c.minute, seconds: c.second))
        } else {
            try coder.serialize(try generalizedTime(date))
        }
    }
}
