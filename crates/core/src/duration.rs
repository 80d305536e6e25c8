//! Durations as users write them in `hifi.toml`: an integer and a unit
//! (`500ms`, `30s`, `5m`, `1h`, `90d`). Deliberately small: fractions and compound
//! forms (`1m30s`) are refused rather than guessed at.

use std::fmt;
use std::time::Duration;

/// Parses `"30s"`-style durations. Returns a message fit for a config error.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| {
        format!("`{text}` is not a duration; write it like \"30s\", \"500ms\" or \"5m\"")
    })?;
    let millis = match unit {
        "ms" => Some(value),
        "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        "d" => value.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "`{text}` has no known unit; use ms, s, m, h or d (e.g. \"30s\")"
            ));
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Displays a duration the way [`parse`] reads it back.
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            ms if ms % 3_600_000 == 0 && ms > 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 && ms > 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("90d"), Ok(Duration::from_secs(90 * 86_400)));
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        for bad in ["30", "1.5s", "1m30s", "s", "", "-3s", "3 days"] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn displays_round_trip() {
        for text in ["500ms", "30s", "5m", "1h", "90s"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&Human(d).to_string()), Ok(d));
        }
    }
}
