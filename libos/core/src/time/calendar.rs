//! Calendar dates in UTC and seconds since the Unix epoch, both ways (pure).
//!
//! Real-time clocks that keep a date rather than a count (the x86 CMOS clock) need the date
//! turned into seconds; log lines turn seconds back into a date people can read. The calendar is
//! the proleptic Gregorian one without leap seconds, as Unix time is: every day has 86 400
//! seconds. Only dates from 1970 on exist here, like [`super::SystemTime`].

use core::fmt;

/// Seconds in a day (Unix time has no leap seconds).
const SECONDS_PER_DAY: u64 = 86_400;
/// Days before the first of each month in a common year.
const DAYS_BEFORE_MONTH: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// A date and time of day, in UTC, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    /// The year, e.g. 2025.
    pub year: u16,
    /// 1 (January) to 12.
    pub month: u8,
    /// 1 to the length of the month.
    pub day: u8,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 59.
    pub second: u8,
}

/// True for Gregorian leap years: every fourth year, except centuries not divisible by 400.
pub const fn is_leap_year(year: u16) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1-12) of `year`; 0 for a month that does not exist.
pub const fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Leap years in `[1, year)`.
const fn leap_years_before(year: u64) -> u64 {
    let y = year - 1;
    y / 4 - y / 100 + y / 400
}

impl DateTime {
    /// Seconds since 1970-01-01 00:00:00 UTC, or `None` when this is not a real moment (month
    /// 13, February 30, 24 o'clock, 60 seconds) or lies before 1970.
    pub fn unix_seconds(&self) -> Option<u64> {
        let valid = self.year >= 1970
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        if !valid {
            return None;
        }
        let year = u64::from(self.year);
        let leap_day = u64::from(self.month > 2 && is_leap_year(self.year));
        let days = 365 * (year - 1970) + leap_years_before(year) - leap_years_before(1970)
            + DAYS_BEFORE_MONTH[usize::from(self.month - 1)]
            + leap_day
            + u64::from(self.day - 1);
        let seconds_of_day = u64::from(self.hour) * 3600 + u64::from(self.minute) * 60 + u64::from(self.second);
        Some(days * SECONDS_PER_DAY + seconds_of_day)
    }

    /// The date and time `seconds` seconds after the epoch (years past 65535 saturate there).
    pub fn from_unix_seconds(seconds: u64) -> DateTime {
        let mut days = seconds / SECONDS_PER_DAY;
        let seconds_of_day = seconds % SECONDS_PER_DAY;
        let mut year: u16 = 1970;
        // A walk of at most a few hundred years for any time a 64-bit nanosecond clock holds;
        // this runs for log lines, not on a hot path.
        loop {
            let length = if is_leap_year(year) { 366 } else { 365 };
            if days < length || year == u16::MAX {
                break;
            }
            days -= length;
            year += 1;
        }
        let mut month = 1;
        while month < 12 && days >= u64::from(days_in_month(year, month)) {
            days -= u64::from(days_in_month(year, month));
            month += 1;
        }
        DateTime {
            year,
            month,
            day: (days + 1).min(31) as u8,
            hour: (seconds_of_day / 3600) as u8,
            minute: (seconds_of_day / 60 % 60) as u8,
            second: (seconds_of_day % 60) as u8,
        }
    }
}

/// `2025-06-01 12:34:56` (ISO 8601 with a space; the zone is always UTC).
impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime { year, month, day, hour, minute, second }
    }

    #[test]
    fn known_moments() {
        // Values checked against `date -u -d ... +%s`.
        let cases = [
            (date(1970, 1, 1, 0, 0, 0), 0),
            (date(1970, 1, 2, 0, 0, 1), 86_401),
            (date(1999, 12, 31, 23, 59, 59), 946_684_799),
            (date(2000, 1, 1, 0, 0, 0), 946_684_800),
            (date(2000, 2, 29, 12, 0, 0), 951_825_600),
            (date(2000, 3, 1, 0, 0, 0), 951_868_800),
            (date(2024, 2, 29, 23, 59, 59), 1_709_251_199),
            (date(2038, 1, 19, 3, 14, 8), 1 << 31),
            (date(2100, 3, 1, 0, 0, 0), 4_107_542_400),
            (date(2262, 4, 11, 23, 47, 16), 9_223_372_036),
        ];
        for (date, seconds) in cases {
            assert_eq!(date.unix_seconds(), Some(seconds), "{date}");
            assert_eq!(DateTime::from_unix_seconds(seconds), date, "{seconds}");
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rules() {
        assert!(is_leap_year(2024) && is_leap_year(2000) && is_leap_year(2400));
        assert!(!is_leap_year(2023) && !is_leap_year(1900) && !is_leap_year(2100));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        // 2100 is not a leap year: its February 29 does not exist, and March 1 follows the 28th.
        assert_eq!(date(2100, 2, 29, 0, 0, 0).unix_seconds(), None);
        let feb28 = date(2100, 2, 28, 0, 0, 0).unix_seconds().unwrap();
        assert_eq!(date(2100, 3, 1, 0, 0, 0).unix_seconds(), Some(feb28 + 86_400));
    }

    #[test]
    fn impossible_dates_are_refused() {
        for bad in [
            date(2025, 0, 1, 0, 0, 0),
            date(2025, 13, 1, 0, 0, 0),
            date(2025, 4, 31, 0, 0, 0),
            date(2025, 2, 29, 0, 0, 0),
            date(2025, 1, 0, 0, 0, 0),
            date(2025, 1, 1, 24, 0, 0),
            date(2025, 1, 1, 0, 60, 0),
            date(2025, 1, 1, 0, 0, 60),
            date(1969, 12, 31, 23, 59, 59),
        ] {
            assert_eq!(bad.unix_seconds(), None, "{bad:?}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // 1970 to 2370 covers every leap-year rule (4, 100 and 400) more than once.
        let mut expected = 0;
        for year in 1970..2370 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    let moment = date(year, month, day, 23, 59, 58);
                    let seconds = moment.unix_seconds().unwrap();
                    assert_eq!(seconds, expected + 86_398, "{moment}");
                    assert_eq!(DateTime::from_unix_seconds(seconds), moment);
                    expected += 86_400;
                }
            }
        }
    }

    #[test]
    fn display_is_iso_8601() {
        assert_eq!(date(2025, 6, 1, 9, 5, 3).to_string(), "2025-06-01 09:05:03");
    }
}
