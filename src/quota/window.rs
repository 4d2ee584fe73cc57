//! Fixed quota windows aligned to UTC.
//!
//! A window is a half-open interval `[start, end)` of Unix seconds:
//!
//! * `second`, `minute`, `hour`, `day` and `"<N>s"` are aligned to the Unix epoch
//!   (`start = now - now % length`), so a `day` runs from 00:00:00 UTC to the next midnight
//!   and `"90s"` windows start at every multiple of 90 s since 1970-01-01T00:00:00Z;
//! * `month` is the calendar month in UTC (28 to 31 days).
//!
//! Unix time has no leap seconds, so every day is 86 400 s. The window's `start` is its id:
//! it identifies the window a reservation was made in.

use serde::{Deserialize, Deserializer};
use std::fmt;

const DAY: u64 = 86_400;
/// Longest `"<N>s"` window accepted: 366 days.
pub const MAX_SECONDS: u64 = 366 * DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    /// A fixed window of N seconds (1 ≤ N ≤ 366 days), aligned to the epoch.
    Seconds(u64),
}

/// One concrete window: `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    /// Nanoseconds from `now_ns` until the window ends (0 when already over).
    pub fn reset_ns(&self, now_ns: u64) -> u64 {
        self.end
            .saturating_mul(1_000_000_000)
            .saturating_sub(now_ns)
    }
}

impl Window {
    pub fn parse(s: &str) -> Result<Window, String> {
        Ok(match s {
            "second" => Window::Second,
            "minute" => Window::Minute,
            "hour" => Window::Hour,
            "day" => Window::Day,
            "month" => Window::Month,
            _ => {
                let n = s
                    .strip_suffix('s')
                    .and_then(|n| {
                        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                            None
                        } else {
                            n.parse::<u64>().ok()
                        }
                    })
                    .ok_or_else(|| {
                        format!(
                            "invalid window {s:?}: expected \"second\", \"minute\", \"hour\", \"day\", \"month\" or \"<N>s\" (e.g. \"90s\")"
                        )
                    })?;
                if n == 0 || n > MAX_SECONDS {
                    return Err(format!(
                        "invalid window {s:?}: N must be between 1 and {MAX_SECONDS} seconds"
                    ));
                }
                Window::Seconds(n)
            }
        })
    }

    /// Fixed length in seconds; `None` for `month`.
    pub fn fixed_length(self) -> Option<u64> {
        match self {
            Window::Second => Some(1),
            Window::Minute => Some(60),
            Window::Hour => Some(3600),
            Window::Day => Some(DAY),
            Window::Month => None,
            Window::Seconds(n) => Some(n),
        }
    }

    /// The window containing `now_s` (Unix seconds).
    pub fn span(self, now_s: u64) -> Span {
        match self.fixed_length() {
            Some(len) => {
                let len = len.max(1);
                let start = now_s - now_s % len;
                Span {
                    start,
                    end: start.saturating_add(len),
                }
            }
            None => {
                let days = now_s / DAY;
                let (y, m, _) = civil_from_days(days);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Span {
                    start: days_from_civil(y, m, 1).saturating_mul(DAY),
                    end: days_from_civil(ny, nm, 1).saturating_mul(DAY),
                }
            }
        }
    }

    /// The window containing `now_ns` (Unix nanoseconds).
    pub fn span_ns(self, now_ns: u64) -> Span {
        self.span(now_ns / 1_000_000_000)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Second => f.write_str("second"),
            Window::Minute => f.write_str("minute"),
            Window::Hour => f.write_str("hour"),
            Window::Day => f.write_str("day"),
            Window::Month => f.write_str("month"),
            Window::Seconds(n) => write!(f, "{n}s"),
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Window::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`, restricted to dates from 1970 on).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year ≥ 1970, month 1..=12, day) → days since 1970-01-01.
pub fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y.saturating_sub(1) } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d.saturating_sub(1);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// In the JSON Schema a window is a string: `second`, `minute`, `hour`, `day`, `month`,
/// or a number of seconds such as `90s`.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(second|minute|hour|day|month|[1-9][0-9]*s)$",
            "description": "Fixed window aligned to UTC: second, minute, hour, day, month (calendar, UTC), or N seconds such as `90s`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23T05:50:53Z
    const NOW: u64 = 1_795_413_053;

    #[test]
    fn civil_round_trip_and_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(NOW / DAY), (2026, 11, 23));
        for d in (0..80_000).step_by(7) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn fixed_windows_align_to_epoch() {
        let s = Window::Minute.span(NOW);
        assert_eq!((s.start % 60, s.end - s.start), (0, 60));
        assert!(s.start <= NOW && NOW < s.end);
        let s = Window::Day.span(NOW);
        assert_eq!(s.start, 1_795_392_000); // 2026-11-23T00:00:00Z
        assert_eq!(s.end, 1_795_478_400);
        let s = Window::Seconds(90).span(NOW);
        assert_eq!((s.start % 90, s.end - s.start), (0, 90));
        assert_eq!(Window::Second.span(5), Span { start: 5, end: 6 });
        // The boundary belongs to the next window.
        assert_eq!(Window::Hour.span(7200).start, 7200);
        assert_eq!(Window::Hour.span(7199).start, 3600);
    }

    #[test]
    fn month_is_the_calendar_month_in_utc() {
        let s = Window::Month.span(NOW);
        assert_eq!(s.start, days_from_civil(2026, 11, 1) * DAY);
        assert_eq!(s.end, days_from_civil(2026, 12, 1) * DAY);
        assert_eq!((s.end - s.start) / DAY, 30);
        // December rolls into January; February of a leap year has 29 days.
        let dec = Window::Month.span(days_from_civil(2026, 12, 31) * DAY + 86_399);
        assert_eq!(dec.end, days_from_civil(2027, 1, 1) * DAY);
        let feb = Window::Month.span(days_from_civil(2028, 2, 10) * DAY);
        assert_eq!((feb.end - feb.start) / DAY, 29);
        // Last second of a month vs first second of the next.
        let first = days_from_civil(2026, 12, 1) * DAY;
        assert_eq!(Window::Month.span(first - 1).end, first);
        assert_eq!(Window::Month.span(first).start, first);
    }

    #[test]
    fn reset_is_exact() {
        let s = Window::Minute.span_ns(NOW * 1_000_000_000 + 250_000_000);
        let now_ns = NOW * 1_000_000_000 + 250_000_000;
        assert_eq!(
            s.reset_ns(now_ns),
            (s.end - NOW) * 1_000_000_000 - 250_000_000
        );
        assert_eq!(s.reset_ns(u64::MAX), 0);
    }

    #[test]
    fn parse_and_display() {
        for (s, w) in [
            ("second", Window::Second),
            ("minute", Window::Minute),
            ("hour", Window::Hour),
            ("day", Window::Day),
            ("month", Window::Month),
            ("90s", Window::Seconds(90)),
        ] {
            assert_eq!(Window::parse(s).unwrap(), w);
            assert_eq!(w.to_string(), s);
        }
        for bad in [
            "",
            "s",
            "0s",
            "-5s",
            "5 s",
            "1m",
            "week",
            "99999999999s",
            "+5s",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }
}
