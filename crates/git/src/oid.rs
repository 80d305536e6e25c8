//! Object ids.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A full git object id: 40 hexadecimal digits (SHA-1) or 64 (SHA-256),
/// always lowercase so that equal ids compare equal.
///
/// Abbreviated ids and revision expressions are not accepted: an `Oid` can be
/// handed to git as an argument without ever being read as an option or a
/// ref name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(String);

impl Oid {
    /// The id as lowercase hexadecimal.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 10 digits, for messages meant for people.
    pub fn short(&self) -> &str {
        &self.0[..10]
    }

    /// Parses git output, which must already be a full lowercase id.
    pub(crate) fn from_git(bytes: &[u8]) -> Option<Oid> {
        let text = std::str::from_utf8(bytes).ok()?;
        let valid = matches!(text.len(), 40 | 64)
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Oid(text.to_owned()))
    }
}

impl FromStr for Oid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Oid, Error> {
        if matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Oid(s.to_ascii_lowercase()))
        } else {
            Err(Error::InvalidOid {
                value: s.to_owned(),
            })
        }
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Oid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha1_and_sha256_and_normalizes_case() {
        let sha1: Oid = "ABCDEF0123456789abcdef0123456789ABCDEF01".parse().unwrap();
        assert_eq!(sha1.as_str(), "abcdef0123456789abcdef0123456789abcdef01");
        assert_eq!(sha1.short(), "abcdef0123");
        assert!("a".repeat(64).parse::<Oid>().is_ok());
    }

    #[test]
    fn rejects_abbreviations_options_and_revisions() {
        for bad in [
            "",
            "abc123",
            "--upload-pack=x",
            "HEAD",
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            assert!(bad.parse::<Oid>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn git_output_must_be_lowercase() {
        assert!(Oid::from_git("A".repeat(40).as_bytes()).is_none());
        assert!(Oid::from_git("a".repeat(40).as_bytes()).is_some());
    }
}
