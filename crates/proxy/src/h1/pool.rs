//! Idle backend connections of the HTTP/1 path, one shard per worker
//! thread (like `upstream::Pool` for hyper's senders): a connection is only
//! used by the thread whose reactor drives it, and checking one out is an
//! uncontended lock and a pop. A connection idle for `pool_idle_timeout` is
//! never used again (PRIOR-ART pitfall 1); the once-a-second sweep closes it.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::workers::current_shard;

/// A connection to a backend with what it has read past the last response.
#[derive(Debug)]
pub(crate) struct BackendConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

#[repr(align(128))]
#[derive(Debug, Default)]
struct Shard(Mutex<Vec<(BackendConn, Instant)>>);

/// The idle connections to one backend.
#[derive(Debug)]
pub(crate) struct RawPool {
    shards: Box<[Shard]>,
}

impl RawPool {
    pub(crate) fn new(shards: usize) -> Self {
        RawPool {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Vec<(BackendConn, Instant)>> {
        // Push, pop and retain only: nothing to repair after a panic.
        self.shards[shard % self.shards.len()]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// This thread's most recently used connection idle for less than
    /// `max_idle` at `now`.
    pub(crate) fn checkout(&self, now: Instant, max_idle: Duration) -> Option<BackendConn> {
        let mut idle = self.lock(current_shard());
        let (conn, since) = idle.pop()?;
        if now.saturating_duration_since(since) >= max_idle {
            // The rest were returned even earlier.
            idle.clear();
            return None;
        }
        Some(conn)
    }

    /// Return a connection after a complete exchange; its idle time counts
    /// from `since` (at the latest, when its last response began).
    pub(crate) fn checkin(&self, conn: BackendConn, since: Instant) {
        self.lock(current_shard()).push((conn, since));
    }

    /// Close connections idle for `max_idle` or more.
    pub(crate) fn sweep(&self, now: Instant, max_idle: Duration) {
        for shard in 0..self.shards.len() {
            self.lock(shard)
                .retain(|(_, since)| now.saturating_duration_since(*since) < max_idle);
        }
    }
}
