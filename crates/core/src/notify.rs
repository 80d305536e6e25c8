//! Which events a webhook receives: `[[notify]] events` patterns over the
//! event names (`deployment.*`, `card.moved`, `*`). `*` matches any run of
//! characters, dots included, so `canary.*` takes every canary event and
//! `*.failed` every failure; a pattern without `*` names one event.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::config::Notify;
use crate::event::EventKind;

impl Notify {
    /// The key its delivery state is kept under: a hash of its url as
    /// written and its format, so the state follows the webhook across
    /// restarts and reorderings of `hifi.toml`, and the url (which may
    /// hold a secret) is never stored.
    pub fn key(&self) -> String {
        let digest = Sha256::digest(format!(
            "hifi-webhook-v1\0{}\0{}",
            self.url,
            self.format.as_str()
        ));
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// How reports name it without revealing a secret: its scheme and
    /// host only (a Slack webhook's path is its secret), or the variable
    /// as written when the whole url is one (`${SLACK_WEBHOOK_URL}`).
    pub fn describe(&self) -> String {
        format!("{} {}", self.format.as_str(), redact(&self.url))
    }
}

/// `scheme://host[:port]`, without credentials, with `/…` standing for
/// any path or query.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        // `${VAR}` standing for the whole url.
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let more = if rest[end..].trim_start_matches('/').is_empty() {
        ""
    } else {
        "/…"
    };
    format!("{scheme}{host}{more}")
}

/// One pattern of `events = [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPattern(String);

impl EventPattern {
    /// Every event (`*`).
    pub fn any() -> EventPattern {
        EventPattern("*".into())
    }

    /// Whether the event named `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }

    /// Whether an event of `kind` matches.
    pub fn matches_kind(&self, kind: EventKind) -> bool {
        self.matches(kind.as_str())
    }
}

/// Whether any of `patterns` matches the event named `name`.
pub fn wanted(patterns: &[EventPattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

/// `*` as any run of bytes, everything else literal. Iterative with one
/// backtrack point, so a pattern of many stars stays linear.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

impl std::str::FromStr for EventPattern {
    type Err = String;

    /// Lowercase letters, digits, `.`, `-` and `*`. A pattern that can match
    /// no event name is refused, so a typo does not silently mute a webhook.
    fn from_str(text: &str) -> Result<EventPattern, String> {
        let shaped = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-*".contains(&b));
        if !shaped {
            return Err(format!(
                "`{text}` is not an event pattern; use event names like \"card.moved\", with `*` for any part (\"deployment.*\")"
            ));
        }
        let pattern = EventPattern(text.to_string());
        if !EventKind::ALL.iter().any(|k| pattern.matches_kind(*k)) {
            return Err(format!(
                "`{text}` matches no event; events are named like card.moved, release.approved, deployment.live, canary.step"
            ));
        }
        Ok(pattern)
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> EventPattern {
        text.parse().unwrap()
    }

    #[test]
    fn star_matches_any_run_of_characters() {
        assert!(p("*").matches("card.moved"));
        assert!(p("deployment.*").matches("deployment.rolled-back"));
        assert!(!p("deployment.*").matches("canary.step"));
        assert!(p("*.failed").matches("deployment.failed"));
        assert!(p("d*.l*e").matches("deployment.live"));
        assert!(p("card.moved").matches("card.moved"));
        assert!(!p("card.moved").matches("card.moved.x"));
        assert!(!p("card.m*d").matches("card.added"));
    }

    #[test]
    fn patterns_that_match_nothing_or_are_malformed_are_refused() {
        assert!(
            "deploy.live"
                .parse::<EventPattern>()
                .unwrap_err()
                .contains("matches no event")
        );
        assert!(
            "Card.Moved"
                .parse::<EventPattern>()
                .unwrap_err()
                .contains("not an event pattern")
        );
        assert!("".parse::<EventPattern>().is_err());
    }

    #[test]
    fn webhooks_are_named_without_their_secrets() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/XyZ"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact("http://user:pw@127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
        let notify = Notify {
            url: "${SLACK_WEBHOOK_URL}".into(),
            format: crate::config::NotifyFormat::Slack,
            events: vec![EventPattern::any()],
            secret: None,
        };
        assert_eq!(notify.describe(), "slack ${SLACK_WEBHOOK_URL}");
        // A secret written beside a variable is hidden all the same.
        let mixed = Notify {
            url: "https://hooks.slack.com/services/T0/B0/SECRET?e=${ENV}".into(),
            ..notify.clone()
        };
        assert_eq!(mixed.describe(), "slack https://hooks.slack.com/…");
        assert_eq!(notify.key().len(), 16);
        let json = Notify {
            format: crate::config::NotifyFormat::Json,
            ..notify.clone()
        };
        assert_ne!(json.key(), notify.key());
    }

    #[test]
    fn any_of_several_patterns_selects_an_event() {
        let patterns = [p("canary.*"), p("release.approved")];
        assert!(wanted(&patterns, "release.approved"));
        assert!(wanted(&patterns, "canary.paused"));
        assert!(!wanted(&patterns, "card.moved"));
    }
}
