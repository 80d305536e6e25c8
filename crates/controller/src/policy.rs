//! What a reconciler does after a tick that failed, like a kube-rs
//! controller's `error_policy`: wait longer after each failure in a row (so a
//! store that is locked or a proxy that is down is not hammered every
//! 100 ms), tell each distinct error once, and go back to the normal pace at
//! the first tick that succeeds.

use std::time::Duration;

/// The longest pause between ticks that keep failing.
pub const MAX_PAUSE: Duration = Duration::from_secs(10);

/// The error policy of one reconciler.
#[derive(Debug, Default)]
pub struct ErrorPolicy {
    failures: u32,
    last: Option<String>,
}

/// What to do after a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// How long to wait before the next tick.
    pub pause: Duration,
    /// A message to log: the error, the first time it is seen in a row;
    /// or that the errors are over.
    pub log: Option<String>,
}

impl ErrorPolicy {
    /// After a tick that succeeded.
    pub fn succeeded(&mut self, tick: Duration) -> Next {
        let log = (self.failures > 0)
            .then(|| format!("working again after {} failed pass(es)", self.failures));
        self.failures = 0;
        self.last = None;
        Next { pause: tick, log }
    }

    /// After a tick that failed with `error`.
    pub fn failed(&mut self, tick: Duration, error: &str) -> Next {
        self.failures = self.failures.saturating_add(1);
        let pause = tick
            .saturating_mul(1 << self.failures.min(10))
            .min(MAX_PAUSE)
            .max(tick);
        let log = (self.last.as_deref() != Some(error)).then(|| error.to_string());
        self.last = Some(error.to_string());
        Next { pause, log }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn failures_back_off_up_to_a_bound_and_are_told_once() {
        let mut policy = ErrorPolicy::default();
        let first = policy.failed(TICK, "the store is locked");
        assert_eq!(first.pause, Duration::from_millis(200));
        assert_eq!(first.log.as_deref(), Some("the store is locked"));
        let second = policy.failed(TICK, "the store is locked");
        assert_eq!(second.pause, Duration::from_millis(400));
        assert_eq!(second.log, None, "the same error is not told again");
        for _ in 0..20 {
            policy.failed(TICK, "the store is locked");
        }
        assert_eq!(policy.failed(TICK, "the store is locked").pause, MAX_PAUSE);
        let other = policy.failed(TICK, "the proxy is down");
        assert_eq!(other.log.as_deref(), Some("the proxy is down"));
    }

    #[test]
    fn a_success_restores_the_pace_and_says_so() {
        let mut policy = ErrorPolicy::default();
        assert_eq!(
            policy.succeeded(TICK),
            Next {
                pause: TICK,
                log: None
            }
        );
        policy.failed(TICK, "boom");
        let back = policy.succeeded(TICK);
        assert_eq!(back.pause, TICK);
        assert!(back.log.is_some_and(|l| l.contains("1 failed pass")));
        assert_eq!(policy.failed(TICK, "boom").pause, TICK * 2);
    }
}
