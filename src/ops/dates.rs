//! Dates as the operator commands write them: RFC 3339 in UTC for JSON
//! (`2025-12-07T02:45:12Z`), `2025-12-07 02:45:12 UTC` for people, and
//! "in 6 days" for what is still ahead. Pure arithmetic on seconds since
//! 1970 (proleptic Gregorian calendar), no time zone database.

/// Seconds since 1970 as (year, month, day, second of the day).
fn civil(secs: i64) -> (i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem)
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let (year, month, day, rem) = civil(secs);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2025-12-07 02:45:12 UTC` for seconds since 1970.
pub fn utc(secs: i64) -> String {
    let (year, month, day, rem) = civil(secs);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// "in 6 days", "in 5 hours", "in 12 minutes".
pub fn until(now: u64, then: u64) -> String {
    let left = then.saturating_sub(now);
    match left {
        0..=3599 => format!("in {} minutes", left / 60),
        3600..=172_799 => format!("in {} hours", left / 3600),
        _ => format!("in {} days", left / 86_400),
    }
}

/// Seconds since 1970, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_table() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (67_090_118_400, "4096-01-01T00:00:00Z"),
        ] {
            assert_eq!(rfc3339(secs), want, "{secs}");
        }
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_735_689_599), "2024-12-31 23:59:59 UTC");
        assert_eq!(utc(4_294_967_295), "2106-02-07 06:28:15 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn time_left() {
        assert_eq!(until(100, 50), "in 0 minutes");
        assert_eq!(until(0, 3599), "in 59 minutes");
        assert_eq!(until(0, 3600), "in 1 hours");
        assert_eq!(until(0, 172_799), "in 47 hours");
        assert_eq!(until(0, 172_800), "in 2 days");
    }
}
