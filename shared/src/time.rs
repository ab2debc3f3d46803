//! Timestamps: stored as milliseconds since the Unix epoch, shown as RFC 3339 with milliseconds and `Z`.

use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Formats epoch milliseconds as `2025-03-01T09:15:42.123Z`.
pub fn format_ms(ms: i64) -> String {
    let dt =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let Some(year) = u32::try_from(dt.year()).ok().filter(|year| *year <= 9999) else { return formatted(dt) };
    // Digit by digit: every message of a history page has a timestamp, and `format!` with its seven padded
    // arguments was 2 % of the stack's CPU serving history pages (`perf`).
    let fields = [
        (year, 4, '-'),
        (u32::from(u8::from(dt.month())), 2, '-'),
        (u32::from(dt.day()), 2, 'T'),
        (u32::from(dt.hour()), 2, ':'),
        (u32::from(dt.minute()), 2, ':'),
        (u32::from(dt.second()), 2, '.'),
        (u32::from(dt.millisecond()), 3, 'Z'),
    ];
    let mut out = String::with_capacity(24);
    for (value, digits, after) in fields {
        for place in (0..digits).rev() {
            out.push(char::from_digit(value / 10u32.pow(place) % 10, 10).unwrap_or('0'));
        }
        out.push(after);
    }
    out
}

/// [`format_ms`] through `format!`, for the years it does not write digit by digit.
fn formatted(dt: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// The instants [`format_ms`] writes: years 0000 to 9999 in UTC.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Parses an RFC 3339 timestamp into epoch milliseconds (sub-millisecond digits dropped, towards the past);
/// `None` for text that is not one, or for an instant outside the years 0000–9999 UTC, which
/// [`format_ms`] could not write back.
pub fn parse_ms(text: &str) -> Option<i64> {
    let dt = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let ms = i64::try_from(dt.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?;
    (MIN_MS..=MAX_MS).contains(&ms).then_some(ms)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> ::time::Date {
    OffsetDateTime::now_utc().date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        assert_eq!(format_ms(1_740_820_542_123), "2025-03-01T09:15:42.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn formatted_timestamps_parse_back() {
        let ms = 1_740_820_542_123;
        assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
        assert_eq!(parse_ms("not a time"), None);
        assert_eq!(parse_ms("0000-01-01T00:00:00+01:00"), None, "year -1 in UTC");
        assert_eq!(parse_ms("0000-01-01T00:00:00Z"), Some(MIN_MS));
        assert_eq!(parse_ms("9999-12-31T23:59:59.999Z"), Some(MAX_MS));
        assert_eq!(parse_ms("1969-12-31T23:59:59.9995Z"), Some(-1), "towards the past");
    }

    proptest::proptest! {
        #[test]
        fn timestamps_are_written_as_format_writes_them(ms in proptest::num::i64::ANY) {
            let ms = ms % 300_000_000_000_000;
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            proptest::prop_assert_eq!(format_ms(ms), formatted(dt));
        }

        #[test]
        fn every_writable_instant_parses_back(ms in MIN_MS..=MAX_MS) {
            proptest::prop_assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
        }

        #[test]
        fn whatever_parses_formats_and_parses_to_itself(
            date in "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
            time in "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?",
            zone in "(Z|z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
        ) {
            // A cursor a client echoes back must name the same instant after our formatting.
            if let Some(ms) = parse_ms(&format!("{date}T{time}{zone}")) {
                proptest::prop_assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
            let _ = parse_ms(&text);
        }
    }
}
