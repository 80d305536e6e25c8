//! Webhooks: the event log delivered to each `[[notify]]` target at least
//! once, in order.
//!
//! Each target has a cursor in the store (the last event it got, passed by
//! its filter or gave up on); a delivery moves it only once the endpoint
//! answered 2xx, so a restart resumes at the first event not delivered and
//! repeats at most the one in flight — receivers dedupe on the
//! `x-hifi-delivery` header (the event's sequence number). A new target
//! starts at the present rather than flooding the history.
//!
//! A failing endpoint (an error status, no answer within the timeout, no
//! connection) is retried with exponential backoff, capped, until the
//! event is older than the retry window (a day by default, so at least an
//! hour of retries); then it is given up on and counted as dropped. While
//! it fails, `hifi status` says so. Each target runs on its own, so one
//! that hangs holds up no other, and none holds up hifi.
//!
//! Time is read from an injected clock; `${VAR}` in a url or secret is
//! resolved through an injected lookup (hifi's environment) at each
//! delivery, and neither the url's path nor a secret is stored or logged.
//!
//! - `format.rs`: the bodies (`json`, `slack`) and the signature.

mod format;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hifi_core::clock::Clock;
use hifi_core::config::{Notify, interpolate};
use hifi_core::notify::wanted;
use hifi_store::{Event, Store};
use http::Method;
use tokio_util::sync::CancellationToken;

use crate::client::http::HttpClient;
use crate::metrics::Metrics;
pub use format::{body, signature};

/// Resolves `${VAR}` names (hifi's own environment, in production).
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How deliveries are paced.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long an endpoint may take to answer.
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles it.
    pub backoff: Duration,
    /// The longest delay between retries.
    pub max_backoff: Duration,
    /// An event is retried until it is this old, then given up on.
    pub retry_for: Duration,
    /// How often a target looks for new events.
    pub poll: Duration,
    /// Events read at a time.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            retry_for: Duration::from_secs(24 * 3600),
            poll: Duration::from_millis(250),
            batch: 100,
        }
    }
}

/// What one pass over a target did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Events delivered.
    pub delivered: usize,
    /// Events its filter passed by.
    pub skipped: usize,
    /// Events given up on.
    pub dropped: usize,
    /// Why the last attempt failed, if it did (the pass stops there).
    pub failed: Option<String>,
    /// Whether the target is waiting for a retry that is not due yet.
    pub waiting: bool,
}

/// Delivers the event log of one project to its webhooks.
pub struct Notifier {
    db: PathBuf,
    project: String,
    dashboard: Option<String>,
    targets: Vec<Notify>,
    clock: Arc<dyn Clock>,
    lookup: Lookup,
    http: HttpClient,
    metrics: Arc<Metrics>,
    options: Options,
}

impl Notifier {
    /// A notifier of `targets`, for the project named `project` whose state
    /// database is `db`; `dashboard` is the team server's URL, linked from
    /// Slack messages.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: PathBuf,
        project: &str,
        dashboard: Option<String>,
        targets: Vec<Notify>,
        clock: Arc<dyn Clock>,
        lookup: Lookup,
        metrics: Arc<Metrics>,
        options: Options,
    ) -> Result<Notifier, String> {
        let http = HttpClient::new(options.timeout, None)
            .map_err(|e| e.to_string())?
            .max_answer(64 * 1024);
        Ok(Notifier {
            db,
            project: project.to_string(),
            dashboard,
            targets,
            clock,
            lookup,
            http,
            metrics,
            options,
        })
    }

    /// How many targets it has.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Delivers what is due to target `i`: every event after its cursor,
    /// in order, until one fails (then it waits for its retry) or none is
    /// left.
    pub async fn pass(&self, store: &mut Store, i: usize) -> Result<Pass, hifi_store::Error> {
        let target = &self.targets[i];
        let key = target.key();
        let now = self.clock.now_ms();
        let row = store.webhook_or_start(&key, store.last_event_seq()?, now)?;
        let mut pass = Pass::default();
        if row.next_at.is_some_and(|at| at > now) {
            pass.waiting = true;
            return Ok(pass);
        }
        let mut attempts = row.attempts;
        for event in store.events_after(row.cursor, self.options.batch)? {
            let now = self.clock.now_ms();
            if !wanted(&target.events, event.kind.as_str()) {
                store.webhook_advanced(&key, event.seq, false, now)?;
                pass.skipped += 1;
                continue;
            }
            let retry_for = i64::try_from(self.options.retry_for.as_millis()).unwrap_or(i64::MAX);
            if attempts > 0 && now.saturating_sub(event.at) > retry_for {
                tracing::warn!(
                    "webhook {}: gave up on event #{} ({}) after retrying it for {} s",
                    target.describe(),
                    event.seq,
                    event.kind,
                    self.options.retry_for.as_secs()
                );
                store.webhook_dropped(&key, event.seq, now)?;
                self.metrics.webhook("dropped");
                pass.dropped += 1;
                attempts = 0;
                continue;
            }
            match self.deliver(target, &event).await {
                Ok(()) => {
                    store.webhook_advanced(&key, event.seq, true, self.clock.now_ms())?;
                    self.metrics.webhook("delivered");
                    pass.delivered += 1;
                    attempts = 0;
                }
                Err(why) => {
                    let now = self.clock.now_ms();
                    let delay = self.backoff(attempts);
                    tracing::warn!(
                        "webhook {}: event #{} not delivered ({why}); next attempt in {} s",
                        target.describe(),
                        event.seq,
                        delay / 1000
                    );
                    store.webhook_failed(&key, &why, now + delay, now)?;
                    self.metrics.webhook("failed");
                    pass.failed = Some(why);
                    break;
                }
            }
        }
        Ok(pass)
    }

    /// The delay before retry number `attempts + 1`, in ms.
    fn backoff(&self, attempts: i64) -> i64 {
        let base = i64::try_from(self.options.backoff.as_millis()).unwrap_or(1000);
        let max = i64::try_from(self.options.max_backoff.as_millis()).unwrap_or(300_000);
        let factor = 1i64 << attempts.clamp(0, 30);
        base.saturating_mul(factor).min(max)
    }

    /// One attempt at one event.
    async fn deliver(&self, target: &Notify, event: &Event) -> Result<(), String> {
        let lookup = |name: &str| (self.lookup)(name);
        let url = interpolate(&target.url, lookup)?;
        let secret = target
            .secret
            .as_deref()
            .map(|s| interpolate(s, lookup))
            .transpose()?;
        let body = body(
            target.format,
            &self.project,
            self.dashboard.as_deref(),
            event,
        );
        let seq = event.seq.to_string();
        let signed = secret.map(|s| signature(s.as_bytes(), &body));
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-hifi-event", event.kind.as_str()),
            ("x-hifi-delivery", seq.as_str()),
        ];
        if let Some(signed) = &signed {
            headers.push(("x-hifi-signature", signed.as_str()));
        }
        let answer = self
            .http
            .send(Method::POST, &url, &headers, Bytes::from(body))
            .await
            .map_err(|e| e.to_string())?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {}", answer.status))
        }
    }

    /// Delivers to every target, each on its own, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let me = Arc::new(self);
        let mut tasks = Vec::new();
        for i in 0..me.targets.len() {
            let me = me.clone();
            let stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let mut store = None;
                loop {
                    if store.is_none() {
                        store = Store::open(&me.db)
                            .map_err(|e| tracing::warn!("webhooks: opening the state: {e}"))
                            .ok();
                    }
                    if let Some(s) = store.as_mut() {
                        let pass = tokio::select! {
                            _ = stop.cancelled() => return,
                            pass = me.pass(s, i) => pass,
                        };
                        if let Err(e) = pass {
                            tracing::warn!("webhooks: {e}");
                            store = None;
                        }
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(me.options.poll) => {}
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}
