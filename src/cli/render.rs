//! Small rendering helpers shared by commands.

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `2024-03-01 14:05:00 +0100`
pub fn time(seconds: i64, tz_offset: i32) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(seconds) else {
        return format!("@{seconds}");
    };
    let offset = jiff::tz::Offset::from_seconds(tz_offset).unwrap_or(jiff::tz::Offset::UTC);
    ts.to_zoned(jiff::tz::TimeZone::fixed(offset))
        .strftime("%Y-%m-%d %H:%M:%S %z")
        .to_string()
}
