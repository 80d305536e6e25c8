//! The health of one service instance as the controller records it: it
//! decides what the routing table may send traffic to and when a slot is
//! ready for all users.

use crate::names::named;

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Started, not yet answering its health path.
    Starting,
    /// Answering 2xx.
    Healthy,
    /// Running, but its last probe failed.
    Unhealthy,
    /// Its process is gone.
    Exited,
}

named!(Health, "instance health" {
    Starting => "starting",
    Healthy => "healthy",
    Unhealthy => "unhealthy",
    Exited => "exited",
});

impl Health {
    /// Whether the proxy may send it traffic: the proxy's own health checks
    /// decide moment to moment; the controller only keeps out what never
    /// came up or is gone.
    pub fn routable(self) -> bool {
        matches!(self, Health::Healthy | Health::Unhealthy)
    }
}
