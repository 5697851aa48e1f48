//! Dates in queries: `2024-01-10` (UTC midnight) or an RFC 3339 time, as unix seconds.

/// Unix seconds of a `YYYY-MM-DD` date (UTC midnight) or an RFC 3339 time.
pub fn parse_date(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    let d = s.parse::<jiff::civil::Date>().ok()?;
    Some(
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

/// A day in seconds: `until D` keeps all of day D, and `= D` compares by day.
pub const DAY: i64 = 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("2024-01-01"), Some(1704067200));
        assert_eq!(parse_date("2024-01-01T10:00:00Z"), Some(1704103200));
        assert_eq!(parse_date("yesterday"), None);
    }
}
