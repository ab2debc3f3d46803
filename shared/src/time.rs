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

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_ms(text: &str) -> Option<i64> {
    let dt = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
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
    }
}
