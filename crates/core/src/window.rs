//! Promotion windows: when a deployment into an environment may *start*
//! (`windows = ["Mon-Fri 09:00-16:00 Europe/Zurich"]`). A window is a set of
//! weekdays, a time of day range and an IANA time zone; times are judged in
//! that zone, with its daylight saving rules (the zone database is bundled,
//! so every machine judges alike). Rollbacks are never held by a window.
//!
//! Written `DAYS HH:MM-HH:MM ZONE`, where DAYS is a day (`Mon`), a range
//! (`Mon-Fri`, `Sat-Sun`), a comma list (`Mon,Wed,Fri`), or `daily`; the
//! range ends after it starts, `24:00` meaning midnight.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// One window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    text: String,
    /// Open days, Monday first.
    days: [bool; 7],
    /// Minutes after midnight, start inclusive, end exclusive.
    start: u16,
    end: u16,
    zone: TimeZone,
}

fn day_index(name: &str) -> Result<usize, String> {
    let lower = name.to_ascii_lowercase();
    DAYS.iter()
        .position(|(short, _)| lower == *short || lower.starts_with(short) && lower.len() <= 9)
        .ok_or_else(|| format!("`{name}` is not a day; write Mon, Tue, Wed, Thu, Fri, Sat or Sun"))
}

fn minutes(text: &str) -> Result<u16, String> {
    let bad = || format!("`{text}` is not a time of day; write HH:MM, 00:00 to 24:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || (h == 24 && m > 0) || text.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Window, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days_text, times, zone_name] = parts[..] else {
            return Err(format!(
                "`{text}` is not a window; write DAYS HH:MM-HH:MM ZONE, e.g. \"Mon-Fri 09:00-16:00 Europe/Zurich\""
            ));
        };
        let mut days = [false; 7];
        if days_text.eq_ignore_ascii_case("daily") {
            days = [true; 7];
        } else {
            for item in days_text.split(',') {
                match item.split_once('-') {
                    Some((from, to)) => {
                        let (from, to) = (day_index(from)?, day_index(to)?);
                        if to < from {
                            return Err(format!(
                                "`{item}` runs backwards; write the days Monday first, e.g. Mon-Fri or Sat-Sun"
                            ));
                        }
                        for open in &mut days[from..=to] {
                            *open = true;
                        }
                    }
                    None => days[day_index(item)?] = true,
                }
            }
        }
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("`{times}` is not a time range; write HH:MM-HH:MM"))?;
        let (start, end) = (minutes(start)?, minutes(end)?);
        if end <= start {
            return Err(format!(
                "`{times}` ends before it starts; a window closes after it opens on the same day"
            ));
        }
        let zone = TimeZone::get(zone_name).map_err(|_| {
            format!("`{zone_name}` is not a time zone of the IANA database; write e.g. Europe/Zurich or UTC")
        })?;
        Ok(Window {
            text: text.to_string(),
            days,
            start,
            end,
            zone,
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn zoned(at_ms: i64, zone: &TimeZone) -> Option<Zoned> {
    Some(
        Timestamp::from_millisecond(at_ms)
            .ok()?
            .to_zoned(zone.clone()),
    )
}

fn weekday_index(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

impl Window {
    /// Whether it is open at `at_ms` (unix ms).
    pub fn contains(&self, at_ms: i64) -> bool {
        let Some(now) = zoned(at_ms, &self.zone) else {
            return false;
        };
        let minute = now.hour() as u16 * 60 + now.minute() as u16;
        self.days[weekday_index(now.weekday())] && self.start <= minute && minute < self.end
    }

    /// When it next opens after `at_ms` (unix ms), within two weeks.
    pub fn next_opening(&self, at_ms: i64) -> Option<i64> {
        let now = zoned(at_ms, &self.zone)?;
        let mut day: Date = now.date();
        let (h, m) = ((self.start / 60) as i8, (self.start % 60) as i8);
        for _ in 0..15 {
            if self.days[weekday_index(day.weekday())] {
                let opens = day
                    .to_datetime(Time::new(h, m, 0, 0).ok()?)
                    .to_zoned(self.zone.clone())
                    .ok()?
                    .timestamp()
                    .as_millisecond();
                if opens > at_ms {
                    return Some(opens);
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// `at_ms` as a person reads it in this window's zone:
    /// `Mon 2026-11-30 09:00 Europe/Zurich`.
    pub fn local_time(&self, at_ms: i64) -> String {
        match zoned(at_ms, &self.zone) {
            Some(z) => format!(
                "{} {} {} {}",
                &format!("{:?}", z.weekday())[..3],
                z.date(),
                z.time().strftime("%H:%M"),
                self.zone.iana_name().unwrap_or("UTC")
            ),
            None => at_ms.to_string(),
        }
    }
}

/// Whether any of `windows` is open at `at_ms`; no windows means always.
pub fn open(windows: &[Window], at_ms: i64) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(at_ms))
}

/// The next opening of any of `windows` after `at_ms`, with the window.
pub fn next_opening(windows: &[Window], at_ms: i64) -> Option<(i64, &Window)> {
    windows
        .iter()
        .filter_map(|w| w.next_opening(at_ms).map(|at| (at, w)))
        .min_by_key(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a civil time in a zone.
    fn at(zone: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(TimeZone::get(zone).unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn a_window_is_open_on_its_days_between_its_times_in_its_zone() {
        let w: Window = "Mon-Fri 09:00-16:00 Europe/Zurich".parse().unwrap();
        // Monday 30 November 2026.
        assert!(!w.contains(at("Europe/Zurich", 2026, 11, 30, 8, 59)));
        assert!(w.contains(at("Europe/Zurich", 2026, 11, 30, 9, 0)));
        assert!(w.contains(at("Europe/Zurich", 2026, 11, 30, 15, 59)));
        assert!(!w.contains(at("Europe/Zurich", 2026, 11, 30, 16, 0)));
        // 09:30 in Zurich is 08:30 UTC in winter: judged in Zurich.
        assert!(w.contains(at("UTC", 2026, 11, 30, 8, 30)));
        assert!(!w.contains(at("UTC", 2026, 11, 30, 7, 30)));
        // Saturday.
        assert!(!w.contains(at("Europe/Zurich", 2026, 12, 5, 10, 0)));
    }

    #[test]
    fn the_next_opening_skips_closed_days_and_follows_daylight_saving() {
        let w: Window = "Mon-Fri 09:00-16:00 Europe/Zurich".parse().unwrap();
        let friday_evening = at("Europe/Zurich", 2026, 12, 4, 17, 0);
        let monday = at("Europe/Zurich", 2026, 12, 7, 9, 0);
        assert_eq!(w.next_opening(friday_evening), Some(monday));
        assert_eq!(w.local_time(monday), "Mon 2026-12-07 09:00 Europe/Zurich");
        // Across the spring change (29 March 2026), still 09:00 local.
        let before = at("Europe/Zurich", 2026, 3, 27, 17, 0);
        assert_eq!(
            w.next_opening(before),
            Some(at("Europe/Zurich", 2026, 3, 30, 9, 0))
        );
        let both: Vec<Window> = vec![w, "Sat 10:00-12:00 UTC".parse().unwrap()];
        let (next, which) = next_opening(&both, friday_evening).unwrap();
        assert_eq!(next, at("UTC", 2026, 12, 5, 10, 0));
        assert_eq!(which.to_string(), "Sat 10:00-12:00 UTC");
        assert!(open(&[], friday_evening), "no windows: always open");
    }

    #[test]
    fn malformed_windows_are_refused_with_what_to_write() {
        for (bad, says) in [
            ("Mon-Fri 09:00-16:00", "DAYS HH:MM-HH:MM ZONE"),
            ("Fri-Mon 09:00-16:00 UTC", "backwards"),
            ("Mon-Fri 9:00-16:00 UTC", "time of day"),
            ("Mon-Fri 16:00-09:00 UTC", "ends before it starts"),
            ("Mon-Fri 09:00-16:00 Mars/Olympus", "IANA"),
            ("Someday 09:00-16:00 UTC", "not a day"),
            ("Mon 09:00-25:00 UTC", "time of day"),
        ] {
            let e = bad.parse::<Window>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let daily: Window = "daily 00:00-24:00 UTC".parse().unwrap();
        assert!(daily.contains(at("UTC", 2026, 12, 6, 23, 59)));
    }
}
