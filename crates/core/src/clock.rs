//! Time, injected. The controller and the application layer never read the
//! system clock directly, so a 30-second canary step or a promotion window
//! is tested by moving a [`ManualClock`] forward (or setting it).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now", in unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wall_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock starting at the current wall time.
    pub fn new() -> ManualClock {
        ManualClock {
            now: AtomicI64::new(wall_ms()),
        }
    }

    /// A clock standing at `ms` (unix ms).
    pub fn at(ms: i64) -> ManualClock {
        ManualClock {
            now: AtomicI64::new(ms),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, ms: i64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now_ms(&self) -> i64 {
        C::now_ms(self)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// The wall clock, for what must match other processes' timestamps (the
/// proxy's metric windows).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
