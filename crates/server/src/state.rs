//! What every handler shares: the project pool, the limiter of failed
//! authentications, the dashboard's sessions, the metrics, the feed of new events and the shutdown
//! signal.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hifi_core::clock::Clock;
use hifi_store::Store;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::Limiter;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::session::Sessions;

/// The server's shared state.
pub struct AppState {
    /// Opened projects.
    pub pool: Arc<Pool>,
    /// Failed authentications per client.
    pub limiter: Limiter,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The newest event's sequence number, as it changes.
    pub events: EventFeed,
    /// Cancelled when the server stops: open event streams end.
    pub shutdown: CancellationToken,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The OpenAPI document, as JSON.
    pub openapi: String,
    /// Signed-in dashboard browsers.
    pub sessions: Sessions,
    /// Whether browsers reach this server over TLS (session cookies are
    /// then `Secure`).
    pub secure: bool,
    /// `[server] url`, when a reverse proxy stands in front.
    pub public_url: Option<String>,
    /// Short writes take turns here, in arrival order, instead of in
    /// SQLite's busy handler, whose sleeps let a late writer overtake one
    /// that has waited long (under 50 concurrent writers, some waited
    /// seconds).
    pub writes: tokio::sync::Mutex<()>,
}

/// Watches the event log for new events — written by this server, the
/// controller or a local command — and tells the event streams.
pub struct EventFeed {
    latest: watch::Receiver<i64>,
    poke: Arc<Notify>,
}

/// How often the log is checked for events written by other processes.
const POLL: Duration = Duration::from_millis(100);

impl EventFeed {
    /// Starts watching the database at `db` until `shutdown`.
    pub fn start(db: PathBuf, shutdown: CancellationToken) -> EventFeed {
        let (tx, latest) = watch::channel(0);
        let poke = Arc::new(Notify::new());
        let wake = poke.clone();
        tokio::spawn(async move {
            let store: Arc<Mutex<Option<Store>>> = Arc::new(Mutex::new(None));
            loop {
                let store = store.clone();
                let db = db.clone();
                let seq = tokio::task::spawn_blocking(move || {
                    let mut guard = store.lock().unwrap_or_else(|e| e.into_inner());
                    if guard.is_none() {
                        *guard = Store::open(&db).ok();
                    }
                    guard.as_ref().and_then(|s| s.last_event_seq().ok())
                })
                .await
                .ok()
                .flatten();
                if let Some(seq) = seq {
                    tx.send_if_modified(|current| {
                        let changed = *current != seq;
                        *current = seq;
                        changed
                    });
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
        EventFeed { latest, poke }
    }

    /// A receiver of the newest sequence number.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.clone()
    }

    /// Something was just written here: look now rather than at the next poll.
    pub fn poke(&self) {
        self.poke.notify_one();
    }
}
