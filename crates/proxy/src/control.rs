//! The proxy's control side: applying and removing tables, opening and
//! closing listeners, and answering the admin queries.
//!
//! Updates are serialised by one async mutex (they are rare and must not
//! interleave); requests never take it. Applying a table is ordered so that
//! a refused update changes nothing: validate → check against the other
//! environments → bind any new listener → swap the table in one store →
//! persist (on failure: swap the previous table back and refuse) → close
//! listeners the table no longer has → answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::compiled::{CompiledTable, Compiler, EnvCell};
use crate::error::{Error, Result};
use crate::health::{BackendReport, HealthRegistry};
use crate::listener::{self, ListenerHandle};
use crate::metrics::{BackendSample, Scrape, SlotSample, Stats, StatsQuery, Window, unix_now};
use crate::persist;
use crate::proxy::{ListenerCtx, RequestShared};
use crate::table::{TableSpec, check_name};
use crate::tracking::SlotRegistry;
use crate::upstream::UpstreamConfig;

/// In-flight work of a slot, answer of `GET /inflight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inflight {
    /// Environment.
    pub env: String,
    /// Slot.
    pub slot: String,
    /// Service, when the query named one; all services otherwise.
    pub service: Option<String>,
    /// Requests whose response has not finished (streaming bodies included).
    pub requests: u64,
    /// Open upgraded (WebSocket) connections.
    pub upgraded: u64,
}

/// Body of `POST /drain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Environment.
    pub env: String,
    /// Slot whose long-lived work must end.
    pub slot: String,
    /// Only this service (all services of the slot when absent).
    #[serde(default)]
    pub service: Option<String>,
    /// Milliseconds from now after which upgraded connections and streaming
    /// responses still open on the slot are closed. 0 closes them now.
    pub deadline_ms: u64,
}

/// Answer of `POST /drain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainAnswer {
    /// Unix ms at which the slot's long-lived work is closed.
    pub deadline_unix_ms: u64,
    /// What is in flight on the slot now.
    pub inflight: Inflight,
}

#[derive(Debug)]
struct EnvEntry {
    cell: Arc<EnvCell>,
    listeners: HashMap<SocketAddr, ListenerHandle>,
}

/// The proxy's state, shared by the admin server and background tasks.
#[derive(Debug)]
pub(crate) struct Control {
    tables_dir: PathBuf,
    envs: Mutex<HashMap<String, EnvEntry>>,
    pub(crate) slots: Arc<SlotRegistry>,
    pub(crate) health: Arc<HealthRegistry>,
    upstream: UpstreamConfig,
    shared: Arc<RequestShared>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

/// How an admin failure maps to an HTTP status.
pub(crate) fn status_of(e: &Error) -> u16 {
    match e {
        Error::InvalidTable(_) => 400,
        Error::Bind { .. } => 409,
        _ => 500,
    }
}

impl Control {
    pub(crate) fn new(
        tables_dir: PathBuf,
        upstream: UpstreamConfig,
        shared: Arc<RequestShared>,
        tracker: TaskTracker,
    ) -> Self {
        Control {
            tables_dir,
            envs: Mutex::new(HashMap::new()),
            slots: Arc::default(),
            health: Arc::default(),
            upstream,
            shutdown: shared.shutdown.clone(),
            shared,
            tracker,
        }
    }

    /// Apply a table; `persist` is false when loading it from disk on start.
    pub(crate) async fn apply(&self, spec: TableSpec, persist: bool) -> Result<()> {
        let valid = spec.validate()?;
        let mut envs = self.envs.lock().await;
        for (name, other) in envs.iter() {
            if *name == valid.spec.env {
                continue;
            }
            if let Some(t) = other.cell.table.load().as_ref() {
                valid.check_against(&t.valid)?;
            }
        }
        let env = valid.spec.env.clone();
        let entry = envs.entry(env.clone()).or_insert_with(|| EnvEntry {
            cell: Arc::new(EnvCell::new(&env)),
            listeners: HashMap::new(),
        });
        let previous = entry.cell.table.load_full();
        if previous
            .as_ref()
            .is_some_and(|p| p.valid.spec == valid.spec)
        {
            return Ok(()); // Same table again: nothing to do (idempotent retries).
        }

        let mut bound = Vec::new();
        for (addr, what) in valid.listeners() {
            if !entry.listeners.contains_key(&addr) {
                match listener::bind(addr, &what).await {
                    Ok(l) => bound.push((addr, l)),
                    Err(e) => {
                        if entry.listeners.is_empty() && previous.is_none() {
                            envs.remove(&env);
                        }
                        return Err(e);
                    }
                }
            }
        }
        // Swap first so the switch takes effect at once (an fsync can take
        // milliseconds on a busy disk), but answer only once the table is
        // durable; if it cannot be persisted, put the previous table back and
        // refuse the update, so the answer always tells the truth.
        let compiler = Compiler {
            slots: &self.slots,
            health: &self.health,
            upstream: &self.upstream,
        };
        let compiled = Arc::new(compiler.compile(valid, previous.as_deref()));
        let keep = compiled.addrs();
        let spec = persist.then(|| compiled.valid.spec.clone());
        entry.cell.table.store(Some(compiled));
        let mut started = Vec::with_capacity(bound.len());
        for (addr, l) in bound {
            let ctx = Arc::new(ListenerCtx {
                env: entry.cell.clone(),
                addr,
                shared: self.shared.clone(),
            });
            entry
                .listeners
                .insert(addr, listener::start(l, ctx, &self.shutdown, &self.tracker));
            started.push(addr);
        }

        if let Some(spec) = spec {
            let dir = self.tables_dir.clone();
            let saved = tokio::task::spawn_blocking(move || persist::save(&dir, &spec))
                .await
                .unwrap_or_else(|e| {
                    Err(Error::Io {
                        action: "persist",
                        path: self.tables_dir.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
                });
            if let Err(e) = saved {
                tracing::error!(%env, error = %e, "cannot persist routing table; previous table restored");
                entry.cell.table.store(previous.clone());
                for addr in started {
                    if let Some(h) = entry.listeners.remove(&addr) {
                        h.close();
                    }
                }
                if previous.is_none() {
                    envs.remove(&env);
                }
                return Err(e);
            }
        }

        entry.listeners.retain(|addr, h| {
            let still = keep.contains(addr);
            if !still {
                h.close();
            }
            still
        });
        drop(previous);
        self.prune(&envs);
        tracing::info!(%env, "routing table applied");
        Ok(())
    }

    /// Forget slot states and health records nothing uses any more.
    fn prune(&self, envs: &HashMap<String, EnvEntry>) {
        let tables: Vec<Arc<CompiledTable>> = envs
            .values()
            .filter_map(|e| e.cell.table.load_full())
            .collect();
        self.slots.prune(|(env, service, slot)| {
            tables.iter().any(|t| {
                t.valid.spec.env == *env
                    && t.slots()
                        .any(|(s, r, _)| s.name == *service && r.name == *slot)
            })
        });
        self.health.prune();
    }

    /// Remove an environment's table and close its listeners.
    pub(crate) async fn remove(&self, env: &str) -> Result<bool> {
        check_name("environment", env)?;
        let mut envs = self.envs.lock().await;
        let Some(entry) = envs.get(env) else {
            return Ok(false);
        };
        let dir = self.tables_dir.clone();
        let name = env.to_owned();
        tokio::task::spawn_blocking(move || persist::delete(&dir, &name))
            .await
            .map_err(|e| Error::Io {
                action: "remove table of",
                path: self.tables_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
        entry.cell.table.store(None);
        for h in entry.listeners.values() {
            h.close();
        }
        envs.remove(env);
        self.prune(&envs);
        tracing::info!(%env, "routing table removed");
        Ok(true)
    }

    /// The table of an environment.
    pub(crate) async fn table(&self, env: &str) -> Option<TableSpec> {
        let envs = self.envs.lock().await;
        let t = envs.get(env)?.cell.table.load_full()?;
        Some(t.valid.spec.clone())
    }

    /// Environments with a table.
    pub(crate) async fn env_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.envs.lock().await.keys().cloned().collect();
        v.sort();
        v
    }

    /// The compiled table an environment serves now.
    async fn compiled(&self, env: &str) -> Option<Arc<CompiledTable>> {
        self.envs.lock().await.get(env)?.cell.table.load_full()
    }

    /// Windowed request statistics of a slot.
    pub(crate) fn stats(&self, q: &StatsQuery) -> Stats {
        let now = unix_now().as_secs();
        let since = q.since_ms / 1000;
        let mut w = Window::new();
        for s in self.slots.matching(&q.env, &q.slot, q.service.as_deref()) {
            s.metrics.window_into(since, now, &mut w);
        }
        w.into_stats(q)
    }

    /// In-flight work of a slot.
    pub(crate) fn inflight(&self, env: &str, slot: &str, service: Option<&str>) -> Inflight {
        let states = self.slots.matching(env, slot, service);
        Inflight {
            env: env.to_owned(),
            slot: slot.to_owned(),
            service: service.map(str::to_owned),
            requests: states.iter().map(|s| s.inflight()).sum(),
            upgraded: states.iter().map(|s| s.upgraded()).sum(),
        }
    }

    /// Schedule the close of a slot's long-lived work.
    pub(crate) async fn drain(self: &Arc<Self>, req: DrainRequest) -> Result<DrainAnswer> {
        check_name("environment", &req.env)?;
        check_name("slot", &req.slot)?;
        let deadline = Duration::from_millis(req.deadline_ms);
        let answer = DrainAnswer {
            deadline_unix_ms: (unix_now() + deadline).as_millis() as u64,
            inflight: self.inflight(&req.env, &req.slot, req.service.as_deref()),
        };
        if deadline.is_zero() {
            self.close_slot(&req).await;
        } else {
            let me = self.clone();
            self.tracker.spawn(async move {
                tokio::select! {
                    _ = me.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(deadline) => me.close_slot(&req).await,
                }
            });
        }
        Ok(answer)
    }

    async fn close_slot(&self, req: &DrainRequest) {
        let live = self.compiled(&req.env).await;
        for state in self
            .slots
            .matching(&req.env, &req.slot, req.service.as_deref())
        {
            // A slot that serves users again (a rollback before the deadline)
            // is not cut off: the drain was meant for the slot going away.
            let serving = live.as_ref().is_some_and(|t| {
                t.slots().any(|(s, r, role)| {
                    s.name == state.service && r.name == state.slot && role != "standby"
                })
            });
            if serving {
                tracing::info!(env = %req.env, service = %state.service, slot = %req.slot,
                    "drain deadline passed but the slot serves users again; nothing closed");
                continue;
            }
            tracing::info!(env = %req.env, service = %state.service, slot = %req.slot,
                upgraded = state.upgraded(), inflight = state.inflight(),
                "drain deadline: closing upgraded connections and streaming responses");
            state.close_tracked();
        }
    }

    /// Health of every backend of an environment.
    pub(crate) async fn health_report(&self, env: &str) -> Option<Vec<BackendReport>> {
        let t = self.compiled(env).await?;
        Some(
            t.slots()
                .flat_map(|(s, r, role)| {
                    r.backends
                        .iter()
                        .map(move |b| b.health.report(&s.name, &r.name, role))
                })
                .collect(),
        )
    }

    /// Prometheus text.
    pub(crate) async fn metrics_text(&self) -> String {
        let mut scrape = Scrape::default();
        for s in self.slots.all() {
            scrape.slots.push(SlotSample {
                env: s.env.clone(),
                service: s.service.clone(),
                slot: s.slot.clone(),
                lifetime: s.metrics.sample(),
                inflight: s.inflight(),
                upgraded: s.upgraded(),
            });
        }
        let envs = self.envs.lock().await;
        let mut names: Vec<&String> = envs.keys().collect();
        names.sort();
        for name in names {
            let cell = &envs[name].cell;
            scrape.unrouted.push((
                name.clone(),
                cell.unrouted.load(std::sync::atomic::Ordering::Relaxed),
            ));
            scrape.bad_requests.push((
                name.clone(),
                cell.bad_requests.load(std::sync::atomic::Ordering::Relaxed),
            ));
            if let Some(t) = cell.table.load_full() {
                for (s, r, _) in t.slots() {
                    for b in &r.backends {
                        scrape.backends.push(BackendSample {
                            env: name.clone(),
                            service: s.name.clone(),
                            slot: r.name.clone(),
                            backend: b.addr.to_string(),
                            healthy: b.health.is_healthy(),
                        });
                    }
                }
            }
        }
        drop(envs);
        scrape.render()
    }

    /// Once a second: clear the next seconds of every metrics ring.
    /// Close backend connections idle for longer than the pool idle timeout
    /// (PRIOR-ART pitfall 1); called once a second.
    pub(crate) async fn sweep_pools(&self) {
        let tables: Vec<_> = {
            let envs = self.envs.lock().await;
            envs.values()
                .filter_map(|e| e.cell.table.load_full())
                .collect()
        };
        let now = std::time::Instant::now();
        for t in &tables {
            for (_, slot, _) in t.slots() {
                for b in &slot.backends {
                    b.pool.sweep(now, self.upstream.pool_idle_timeout);
                    b.raw.sweep(now, self.upstream.pool_idle_timeout);
                }
            }
        }
    }

    pub(crate) fn tick(&self) {
        let now = unix_now().as_secs();
        for s in self.slots.all() {
            s.metrics.clear_ahead(now);
        }
    }
}
