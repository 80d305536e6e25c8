//! hifi's control plane. Commands write desired state to the store; the
//! controller reconciles each environment toward it through the runtime
//! (service instances) and the proxy (routing tables), one persisted step
//! at a time, so killing it at any moment loses nothing: the proxy and the
//! instances live on, and the next controller re-adopts them and resumes
//! every rollout from its last recorded step.
//!
//! One task per environment, so a slow start in one environment never holds
//! up a canary in another; one more task watches the proxy process and
//! restarts it if it dies. Time comes from an injected [`Clock`].
//!
//! Each environment's task observes, plans and executes: the decisions are a
//! pure function ([`plan::plan`]) of what the store and the runtime say, and
//! a tick that fails waits longer before the next ([`policy`]).
//!
//! # Layout
//!
//! - [`plan`]: the pure planner — what to do next in an environment
//!   (`plan/supervise.rs`: crashes, restarts, probes; `plan/rollout.rs`:
//!   gate, artifacts, idle slot, smoke, canary steps, promotion, abort;
//!   `plan/tests.rs`: every transition, without processes). A new canary
//!   metric is judged in `hifi_core::rollout` and fetched in `env/mod.rs`.
//! - `env`: the reconciler of one environment — observing (`env/mod.rs`),
//!   executing the plan's actions (`env/execute.rs`), pushing the table.
//! - [`policy`]: the error policy between ticks.
//! - [`instances`]: specifying, starting, recording and stopping instances.
//! - [`table`]: the proxy's routing table, derived from state.
//! - [`cluster`]: environments whose proxy runs in their cluster
//!   (Kubernetes): the table as it reads it, and its replicas' figures
//!   summed.
//! - [`proxy_process`]: starting, adopting and restarting the proxy.
//! - [`clock`]: the injected clock.
//! - `smoke`: the pre-switch smoke check.
//! - [`error`]: the crate's error.

pub mod clock;
pub mod cluster;
mod env;
pub mod error;
pub mod instances;
pub mod plan;
pub mod policy;
pub mod proxy_process;
mod smoke;
pub mod table;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hifi_core::deployment::DeploymentState;
use hifi_core::event::EventKind;
use hifi_core::{Config, Layout};
use hifi_proxy::AdminClient;
use hifi_runtime::{LocalRuntime, Runtime};
use hifi_store::events::Subject;
use hifi_store::{Audit, Store, Update};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use proxy_process::ProxyLaunch;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the project's files are.
    pub layout: Layout,
    /// Who the controller's changes are recorded as.
    pub actor: String,
    /// Pause between reconciliation passes.
    pub tick: Duration,
    /// How long an instance may take to answer its health path.
    pub start_timeout: Duration,
    /// How long a stopped instance may take to exit before it is killed.
    pub stop_grace: Duration,
    /// How long the smoke command may run.
    pub smoke_timeout: Duration,
    /// How to start the proxy.
    pub proxy: ProxyLaunch,
    /// Told of every reconciliation pass (for metrics).
    pub on_pass: Option<PassHook>,
}

/// Called after each reconciliation pass of an environment with the
/// environment, how long the pass took and whether it succeeded.
#[derive(Clone)]
pub struct PassHook(pub Arc<PassFn>);

/// What a [`PassHook`] calls: environment, duration, success.
pub type PassFn = dyn Fn(&str, Duration, bool) + Send + Sync;

impl std::fmt::Debug for PassHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassHook")
    }
}

impl Options {
    /// Defaults for the project laid out by `layout`, starting the proxy
    /// with `proxy`.
    pub fn new(layout: Layout, proxy: ProxyLaunch) -> Options {
        Options {
            layout,
            actor: "hifi".into(),
            tick: Duration::from_millis(100),
            start_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(5),
            smoke_timeout: Duration::from_secs(60),
            proxy,
            on_pass: None,
        }
    }
}

/// What every task of the controller shares.
pub(crate) struct Shared<R: Runtime, C: Clock> {
    options: Options,
    runtime: R,
    /// Runs hifi's own processes (the proxy), whatever runs the services.
    processes: LocalRuntime,
    clock: C,
    proxy: AdminClient,
    config: Mutex<(Option<SystemTime>, Arc<Config>)>,
    /// Bumped each time the proxy is (re)started, so every environment
    /// pushes its table again even if it did not change.
    generation: AtomicU64,
}

fn read_config(layout: &Layout) -> Result<(Option<SystemTime>, Config)> {
    let path = layout.config();
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let config = Config::parse(&text).map_err(|e| Error::Config {
        path,
        message: e.to_string(),
    })?;
    Ok((modified, config))
}

impl<R: Runtime, C: Clock> Shared<R, C> {
    pub(crate) fn open_store(&self) -> Result<Store> {
        Ok(Store::open_in(&self.options.layout)?)
    }

    /// The config, re-read when `hifi.toml` changed. A broken edit keeps the
    /// last good config running (and says so) rather than stopping anything.
    pub(crate) fn config(&self) -> Arc<Config> {
        let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.options.layout.config();
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if modified != guard.0 {
            match read_config(&self.options.layout) {
                Ok((modified, config)) => {
                    self.runtime.configure(&config);
                    *guard = (modified, Arc::new(config));
                }
                Err(e) => {
                    tracing::warn!("keeping the previous config: {e}");
                    guard.0 = modified;
                }
            }
        }
        guard.1.clone()
    }

    pub(crate) fn proxy_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn audit(&self) -> Audit {
        Audit {
            actor: self.options.actor.clone(),
            at: self.clock.now_ms(),
        }
    }
}

/// The control plane of one project.
pub struct Controller<R: Runtime, C: Clock> {
    shared: Arc<Shared<R, C>>,
}

impl<R: Runtime, C: Clock> Controller<R, C> {
    /// A controller for the project in `options.root`.
    pub fn new(options: Options, runtime: R, clock: C) -> Result<Self> {
        let (modified, config) = read_config(&options.layout)?;
        // A preview token that cannot be resolved would keep the
        // environment's listener closed; refuse to start instead.
        for env in &config.environments {
            instances::preview_token(env).map_err(|message| Error::Config {
                path: options.layout.config(),
                message,
            })?;
        }
        let proxy = AdminClient::new(&options.proxy.admin);
        runtime.configure(&config);
        Ok(Controller {
            shared: Arc::new(Shared {
                options,
                runtime,
                processes: LocalRuntime::new(),
                clock,
                proxy,
                config: Mutex::new((modified, Arc::new(config))),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// Runs until `shutdown` completes: starts or adopts the proxy, then
    /// reconciles every environment. `ready` is called once the proxy
    /// answers and every environment has had its first pass (its live state
    /// restored). On shutdown, deployments still in progress are aborted and
    /// every process hifi started is stopped.
    pub async fn run(
        &self,
        ready: impl FnOnce(),
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let shared = &self.shared;
        let mut store = shared.open_store()?;
        let started = shared.options.proxy.ensure(&shared.processes).await?;
        shared.generation.fetch_add(1, Ordering::SeqCst);
        let message = if started {
            "control plane started; proxy started"
        } else {
            "control plane started; running proxy adopted"
        };
        store.record_event(
            &shared.audit(),
            EventKind::ControllerStarted,
            Subject::default(),
            message,
        )?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(64);
        let mut envs: HashMap<String, JoinHandle<()>> = HashMap::new();
        for env in &shared.config().environments {
            let task = spawn_reconciler(shared, &env.name, &stop_rx, Some(first_tx.clone()))?;
            envs.insert(env.name.clone(), task);
        }
        drop(first_tx);
        let proxy_task = tokio::spawn(supervise_proxy(shared.clone(), stop_rx.clone()));

        let mut shutdown = std::pin::pin!(shutdown);
        let mut waiting = envs.len();
        let mut ready = Some(ready);
        if waiting == 0
            && let Some(ready) = ready.take()
        {
            ready();
        }
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                got = first_rx.recv(), if waiting > 0 => {
                    if got.is_some() { waiting -= 1; } else { waiting = 0; }
                    if waiting == 0
                        && let Some(ready) = ready.take() { ready(); }
                }
                // hifi.toml may gain or lose environments while hifi runs.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    self.follow_environments(&mut envs, &stop_rx).await?;
                }
            }
        }

        let _ = stop_tx.send(true);
        // A task in the middle of a long wait is cut short: every step is
        // recorded before the effects that follow from it, so nothing is lost.
        for task in envs.into_values().chain([proxy_task]) {
            task.abort();
            let _ = task.await;
        }
        self.stop_everything("hifi was stopped").await.map(|_| ())
    }

    /// Starts a reconciler for each environment added to `hifi.toml`, and
    /// retires each one removed: its deployment in progress is aborted, its
    /// instances stopped, its table (and so its ports) removed.
    async fn follow_environments(
        &self,
        envs: &mut HashMap<String, JoinHandle<()>>,
        stop: &watch::Receiver<bool>,
    ) -> Result<()> {
        let shared = &self.shared;
        let config = shared.config();
        let wanted: Vec<&str> = config
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        for name in &wanted {
            if !envs.contains_key(*name) {
                envs.insert(
                    name.to_string(),
                    spawn_reconciler(shared, name, stop, None)?,
                );
                let message = format!("environment {name} added to hifi.toml; reconciling it");
                shared.open_store()?.record_event(
                    &shared.audit(),
                    EventKind::EnvironmentAdded,
                    Subject::env(name),
                    &message,
                )?;
            }
        }
        let gone: Vec<String> = envs
            .keys()
            .filter(|name| !wanted.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(task) = envs.remove(&name) {
                task.abort();
                let _ = task.await;
            }
            let mut store = shared.open_store()?;
            let audit = shared.audit();
            abort_in_progress(&mut store, &audit, &name, "its environment left hifi.toml")?;
            let (_, errors) = stop_instances(
                &mut store,
                &shared.runtime,
                &audit,
                Some(&name),
                shared.options.stop_grace,
            )
            .await?;
            if let Err(e) = shared.proxy.remove_table(&name).await {
                tracing::warn!("removing the table of {name}: {e}");
            }
            let mut message = format!(
                "environment {name} left hifi.toml; its instances and listeners are stopped"
            );
            if !errors.is_empty() {
                message.push_str(&format!(" (could not stop: {})", errors.join("; ")));
            }
            store.record_event(
                &audit,
                EventKind::EnvironmentRemoved,
                Subject::env(&name),
                &message,
            )?;
        }
        Ok(())
    }

    /// Aborts deployments in progress and stops every instance and the proxy.
    pub async fn stop_everything(&self, why: &str) -> Result<Stopped> {
        stop_everything(
            &self.shared.options,
            &self.shared.runtime,
            &self.shared.processes,
            self.shared.audit(),
            why,
        )
        .await
    }
}

/// What [`stop_everything`] stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// The recorded instances stopped, described (`service api (dev/blue)`).
    pub instances: Vec<String>,
    /// Instances found running by the runtime's own records although the
    /// store no longer knew them (its state was lost or restored).
    pub unrecorded: Vec<String>,
    /// Whether the proxy was running and was stopped.
    pub proxy: bool,
}

impl Stopped {
    /// What was stopped, in a sentence.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.instances.is_empty() {
            parts.push(format!(
                "{} instance(s): {}",
                self.instances.len(),
                self.instances.join(", ")
            ));
        }
        if !self.unrecorded.is_empty() {
            parts.push(format!(
                "{} instance(s) the state no longer knew: {}",
                self.unrecorded.len(),
                self.unrecorded.join(", ")
            ));
        }
        if self.proxy {
            parts.push("the proxy".into());
        }
        if parts.is_empty() {
            "nothing was running".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Stops everything hifi started for the project, whether or not a
/// controller runs: aborts deployments in progress (their candidate is gone
/// with the processes), stops every recorded instance, then every instance
/// the runtime still finds running by its own records (what a lost state
/// forgot), then the proxy. A process that cannot be stopped does not stop
/// the others; the failures are reported together at the end.
pub async fn stop_everything<R: Runtime>(
    options: &Options,
    runtime: &R,
    processes: &LocalRuntime,
    audit: Audit,
    why: &str,
) -> Result<Stopped> {
    let mut store = Store::open_in(&options.layout)?;
    let envs: Vec<String> = read_config(&options.layout)
        .map(|(_, c)| c.environments.into_iter().map(|e| e.name).collect())
        .unwrap_or_default();
    for env in &envs {
        abort_in_progress(&mut store, &audit, env, why)?;
    }
    let (instances, mut errors) =
        stop_instances(&mut store, runtime, &audit, None, options.stop_grace).await?;
    let mut unrecorded = Vec::new();
    match runtime.discover().await {
        Ok(found) => {
            for instance in found {
                match runtime.stop(&instance, options.stop_grace).await {
                    Ok(()) => unrecorded.push(instance.describe()),
                    Err(e) => errors.push(format!("{}: {e}", instance.describe())),
                }
            }
        }
        Err(e) => errors.push(format!("finding what runs: {e}")),
    }
    let proxy = match options.proxy.stop(processes).await {
        Ok(was_running) => was_running,
        Err(e) => {
            errors.push(format!("the proxy: {e}"));
            false
        }
    };
    let stopped = Stopped {
        instances,
        unrecorded,
        proxy,
    };
    let mut message = format!(
        "control plane stopped ({why}); stopped {}",
        stopped.describe()
    );
    if !errors.is_empty() {
        message.push_str(&format!("; could not stop: {}", errors.join("; ")));
    }
    store.record_event(
        &audit,
        EventKind::ControllerStopped,
        Subject::default(),
        &message,
    )?;
    if errors.is_empty() {
        Ok(stopped)
    } else {
        Err(Error::Other(format!(
            "could not stop everything: {}",
            errors.join("; ")
        )))
    }
}

/// Aborts the deployment in progress in `env`, if any: its candidate goes.
fn abort_in_progress(store: &mut Store, audit: &Audit, env: &str, why: &str) -> Result<()> {
    if let Some(d) = store.deployment_in_progress(env)? {
        let mut routing = store.routing(env)?;
        if routing
            .candidate
            .as_ref()
            .is_some_and(|c| c.release == d.release)
        {
            routing.abort().ok();
        }
        let reason = format!("aborted: {why} while it was {}", d.state);
        store.update_deployment(
            audit,
            d.id,
            Update {
                state: Some(DeploymentState::Aborted),
                reason: Some(Some(&reason)),
                routing: Some(&routing),
                unfollow: Some(&reason),
                message: &reason,
                ..Update::default()
            },
        )?;
    }
    Ok(())
}

/// Stops the recorded instances (of one environment, or all), going on past
/// failures; returns what was stopped and what could not be.
async fn stop_instances<R: Runtime>(
    store: &mut Store,
    runtime: &R,
    audit: &Audit,
    env: Option<&str>,
    grace: Duration,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut stopped = Vec::new();
    let mut errors = Vec::new();
    for row in store.instances(env)? {
        let what = format!("service {} ({}/{})", row.service, row.env, row.slot);
        match serde_json::from_str::<hifi_runtime::Instance>(&row.handle) {
            Ok(instance) => {
                if let Err(e) = runtime.stop(&instance, grace).await {
                    errors.push(format!("{what}: {e}"));
                    continue;
                }
            }
            // Unreadable: nothing can be signalled; say so rather than guess.
            Err(e) => {
                errors.push(format!("{what}: its record is unreadable ({e})"));
                continue;
            }
        }
        let message = format!("{what} stopped");
        store.remove_instance(
            audit,
            (&row.env, row.slot, &row.service, row.replica),
            &message,
        )?;
        stopped.push(what);
    }
    Ok((stopped, errors))
}

/// Spawns the task that reconciles one environment every tick.
fn spawn_reconciler<R: Runtime, C: Clock>(
    shared: &Arc<Shared<R, C>>,
    name: &str,
    stop: &watch::Receiver<bool>,
    first_pass: Option<tokio::sync::mpsc::Sender<()>>,
) -> Result<JoinHandle<()>> {
    let mut reconciler = env::EnvReconciler::new(name.to_string(), shared.clone())?;
    let mut stop = stop.clone();
    let tick = shared.options.tick;
    let on_pass = shared.options.on_pass.clone();
    let name = name.to_string();
    Ok(tokio::spawn(async move {
        let mut first_pass = first_pass;
        let mut policy = policy::ErrorPolicy::default();
        loop {
            let began = std::time::Instant::now();
            let outcome = reconciler.tick().await;
            if let Some(PassHook(hook)) = &on_pass {
                hook(&name, began.elapsed(), outcome.is_ok());
            }
            let next = match outcome {
                Ok(()) => policy.succeeded(tick),
                Err(e) => policy.failed(tick, &e.to_string()),
            };
            if let Some(log) = next.log {
                tracing::warn!("{name}: {log}");
            }
            if let Some(first) = first_pass.take() {
                let _ = first.send(()).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(next.pause) => {}
                _ = stop.changed() => break,
            }
        }
    }))
}

async fn supervise_proxy<R: Runtime, C: Clock>(
    shared: Arc<Shared<R, C>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.options.tick) => {}
            _ = stop.changed() => return,
        }
        if shared.options.proxy.alive(&shared.processes) {
            continue;
        }
        match shared.options.proxy.ensure(&shared.processes).await {
            // One that answers but was never recorded was adopted: nothing new.
            Ok(false) => {}
            Ok(true) => {
                shared.generation.fetch_add(1, Ordering::SeqCst);
                tracing::warn!("the proxy had stopped; restarted it with its persisted tables");
                let recorded = shared.open_store().and_then(|mut store| {
                    Ok(store.record_event(
                        &shared.audit(),
                        EventKind::ProxyRestarted,
                        Subject::default(),
                        "the proxy had stopped; restarted it with its persisted tables",
                    )?)
                });
                if let Err(e) = recorded {
                    tracing::error!("could not record the proxy's restart: {e}");
                }
            }
            Err(e) => tracing::warn!("restarting the proxy: {e}"),
        }
    }
}
