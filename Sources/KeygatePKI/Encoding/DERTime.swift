import Foundation
import SwiftASN1

/// `Time` values for certificates, CRLs and OCSP (RFC 5280 §4.1.2.5): UTCTime through 2049,
/// GeneralizedTime from 2050, whole seconds, always UTC.
enum DERTime {
    /// The UTC calendar fields of `date` (whole seconds, rounded down), by arithmetic on the
    /// proleptic Gregorian calendar: a CRL of 100,000 entries formats 100,000 times, and building
    /// a `Calendar` for each cost most of its time.
    static func components(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        let total = Int64(date.timeIntervalSince1970.rounded(.down))
        var days = total / 86_400
        var secondOfDay = total % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        // Count days from 0000-03-01, so the leap day is the last day of a "year"; 400-year eras
        // have exactly 146,097 days.
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (
            Int(year), Int(month), Int(day), Int(secondOfDay / 3600), Int(secondOfDay % 3600 / 60),
            Int(secondOfDay % 60)
        )
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

    /// Appends the DER of a `Time` (tag, length, ASCII digits, `Z`) straight to `bytes`: the same
    /// encoding as ``appendTime(_:into:)``, without a serializer, for CRLs with many entries.
    static func appendTimeBytes(_ date: Date, to bytes: inout [UInt8]) {
        let c = components(date)
        func two(_ value: Int) {
            bytes.append(UInt8(ascii: "0") + UInt8(value / 10 % 10))
            bytes.append(UInt8(ascii: "0") + UInt8(value % 10))
        }
        if c.year < 2050 {
            bytes.append(contentsOf: [0x17, 13])  // UTCTime
            two(c.year % 100)
        } else {
            bytes.append(contentsOf: [0x18, 15])  // GeneralizedTime
            two(c.year / 100)
            two(c.year % 100)
        }
        two(c.month)
        two(c.day)
        two(c.hour)
        two(c.minute)
        two(c.second)
        bytes.append(UInt8(ascii: "Z"))
    }
}
