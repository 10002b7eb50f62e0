//! UTC days, the unit of TLS reporting (RFC 8460 §4.1: a report covers
//! 0000–2400 UTC), and the [`Clock`] that says which day it is.
//!
//! The clock is a trait so that tests and drills can run danegate as if
//! it were another time (`danegate run --report-clock`), and a day can
//! end under a test's control; the relay's own timeouts never use it.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const DAY: u64 = 86_400;

/// A UTC day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub u32);

impl Day {
    /// The day `t` falls on.
    pub fn of(t: SystemTime) -> Day {
        let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Day((secs / DAY) as u32)
    }

    /// Seconds since the epoch at 00:00:00 of this day.
    pub fn start_unix(self) -> u64 {
        u64::from(self.0) * DAY
    }

    /// The day's last second (23:59:59), as RFC 8460's example report
    /// ends its date range.
    pub fn end_unix(self) -> u64 {
        self.start_unix() + DAY - 1
    }

    /// When the day starts.
    pub fn start(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.start_unix())
    }

    /// When the next day starts.
    pub fn end(self) -> SystemTime {
        self.next().start()
    }

    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }

    pub fn prev(self) -> Day {
        Day(self.0.saturating_sub(1))
    }

    /// "2026-12-06".
    pub fn parse(text: &str) -> Result<Day, String> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(text, &format)
            .map_err(|e| format!("{text:?} is not a date (YYYY-MM-DD): {e}"))?;
        let days =
            (date - time::Date::from_julian_day(2_440_588).expect("1970-01-01")).whole_days();
        u32::try_from(days)
            .map(Day)
            .map_err(|_| format!("{text:?} is before 1970"))
    }

    /// RFC 3339 of 00:00:00 (`start-datetime`).
    pub fn start_datetime(self) -> String {
        rfc3339(self.start_unix())
    }

    /// RFC 3339 of 23:59:59 (`end-datetime`).
    pub fn end_datetime(self) -> String {
        rfc3339(self.end_unix())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = OffsetDateTime::from_unix_timestamp(self.start_unix() as i64)
            .expect("a u32 day is in range");
        write!(
            f,
            "{:04}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day()
        )
    }
}

/// `secs` since the epoch as RFC 3339 in UTC ("2026-12-06T00:00:00Z").
pub fn rfc3339(secs: u64) -> String {
    OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time, e.g. for `--report-clock`.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// `t` as an RFC 5322 date (the Date: field of a mailed report).
pub fn rfc5322(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// What time it is for TLS reporting.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;

    fn today(&self) -> Day {
        Day::of(self.now())
    }
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that read `at` when it was made and runs on at the real pace
/// (`danegate run --report-clock`).
pub struct StartedAt {
    at: SystemTime,
    since: Instant,
}

impl StartedAt {
    pub fn new(at: SystemTime) -> StartedAt {
        StartedAt {
            at,
            since: Instant::now(),
        }
    }
}

impl Clock for StartedAt {
    fn now(&self) -> SystemTime {
        self.at + self.since.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_their_names() {
        let d = Day::parse("2026-12-06").unwrap();
        assert_eq!(d.to_string(), "2026-12-06");
        assert_eq!(d.start_datetime(), "2026-12-06T00:00:00Z");
        assert_eq!(d.end_datetime(), "2026-12-06T23:59:59Z");
        assert_eq!(Day::of(d.start()), d);
        assert_eq!(Day::of(d.end() - Duration::from_secs(1)), d);
        assert_eq!(Day::of(d.end()), d.next());
        assert_eq!(d.next().to_string(), "2026-12-07");
        assert_eq!(Day::parse("1970-01-01"), Ok(Day(0)));
        assert!(Day::parse("2026-13-01").is_err());
        assert!(Day::parse("yesterday").is_err());
        assert_eq!(
            rfc5322(d.start() + Duration::from_secs(3723)),
            "Sun, 6 Dec 2026 01:02:03 +0000"
        );
        let t = parse_rfc3339("2026-12-06T23:59:30Z").unwrap();
        assert_eq!(Day::of(t), d);
        assert_eq!(rfc3339(d.end_unix()), "2026-12-06T23:59:59Z");
    }

    #[test]
    fn a_started_clock_runs_from_its_start() {
        let at = parse_rfc3339("2026-12-06T23:59:59Z").unwrap();
        let c = StartedAt::new(at);
        let now = c.now();
        assert!(now >= at && now < at + Duration::from_secs(5));
        assert_eq!(c.today().to_string(), "2026-12-06");
    }
}
