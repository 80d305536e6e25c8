//! The reconciler of one environment. Each tick it reads the desired state
//! from the store, looks at what runs, and takes the next step:
//!
//! - supervise (`supervise.rs`): restart crashed instances (with backoff),
//!   probe health, stop instances no slot needs any more; without a
//!   deployment in progress, keep the live state running (after `hifi down`
//!   or a reboot) and record verification once the active release has been
//!   healthy for the environment's soak time;
//! - drive the deployment in progress (`rollout.rs`), one lifecycle state
//!   per tick: pending (fidelity gate) → building (artifacts) → starting
//!   (idle slot, health) → verifying (smoke, then canary steps judged on the
//!   proxy's figures) → live, or failed / aborted with the reason;
//! - push the routing table to the proxy when it changed.
//!
//! The rule for crash safety: a step is recorded before the effects that
//! follow from it (a candidate is in the routing before its instances
//! start; an instance is recorded the moment it is spawned), and every
//! effect is idempotent, so a controller killed anywhere redoes at most one
//! step. Traffic is the one exception, on purpose: a new routing is pushed
//! to the proxy *before* it is recorded, so a refused table (a port taken by
//! another program) fails the deployment instead of recording a state
//! nothing serves; a crash between the two is repaired by redoing the step.

mod rollout;
mod supervise;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hifi_artifacts::Artifacts;
use hifi_core::release::ServiceVersion;
use hifi_core::{Config, Environment, ReleaseId, Routing, Slot};
use hifi_runtime::{InstanceSpec, Runtime, free_port};
use hifi_store::{Audit, Deployment, Store, Update};
use serde_json::Value;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::instances::{self, SpecBuilder};
use crate::{Shared, table};

/// How often a running instance's health path is probed.
const PROBE_EVERY_MS: i64 = 1_000;
/// The longest wait between restarts of a crashing instance.
const MAX_BACKOFF_MS: i64 = 30_000;

/// How long to wait before restarting an instance that crashed `restarts` times.
fn backoff_ms(restarts: i64) -> i64 {
    (1_000i64 << restarts.clamp(0, 5)).min(MAX_BACKOFF_MS)
}

/// The reconciler of one environment.
pub(crate) struct EnvReconciler<R: Runtime, C: Clock> {
    name: String,
    shared: Arc<Shared<R, C>>,
    store: Store,
    /// The table last accepted by the proxy, and the proxy generation it went to.
    last_table: Option<(u64, Value)>,
    /// Stable internal ports already read or assigned.
    ports: HashMap<String, u16>,
    /// When the current canary step may next be judged (after "too few requests").
    next_judgement: Option<(i64, i64)>,
    /// When each crashed instance may be restarted, by (slot, service).
    restart_at: HashMap<(String, String), i64>,
    last_probe: i64,
    /// Since when every service of the active release has been healthy.
    healthy_since: Option<(ReleaseId, i64)>,
    verified: Option<ReleaseId>,
    /// The last "slot unavailable" reason recorded, so it is told once.
    unavailable: HashMap<Slot, String>,
    /// The deployment whose smoke check passed.
    smoked: Option<i64>,
    /// Since when the candidate of a deployment has not been fully routable.
    unready_since: Option<(i64, i64)>,
    /// When a slot that could not be brought up may be tried again.
    retry_at: HashMap<Slot, (i64, u32)>,
    /// The last warning logged per topic.
    warned: HashMap<&'static str, String>,
}

/// How a deployment that did not go live ends.
enum Ending {
    Failed,
    Aborted,
}

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    pub(crate) fn new(name: String, shared: Arc<Shared<R, C>>) -> Result<Self> {
        let store = shared.open_store()?;
        Ok(EnvReconciler {
            name,
            shared,
            store,
            last_table: None,
            ports: HashMap::new(),
            next_judgement: None,
            restart_at: HashMap::new(),
            last_probe: 0,
            healthy_since: None,
            verified: None,
            unavailable: HashMap::new(),
            smoked: None,
            unready_since: None,
            retry_at: HashMap::new(),
            warned: HashMap::new(),
        })
    }

    fn now(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    fn audit(&self) -> Audit {
        Audit {
            actor: self.shared.options.actor.clone(),
            at: self.now(),
        }
    }

    /// One reconciliation pass.
    pub(crate) async fn tick(&mut self) -> Result<()> {
        let config = self.shared.config();
        let Ok(env) = config.environment(&self.name) else {
            return Ok(());
        };
        let env = env.clone();
        // Supervision problems are its own to report; they must not hold up
        // the deployment in progress.
        if let Err(e) = self.supervise(&config, &env).await {
            self.warn_once("supervise", &format!("{}: {e}", env.name));
        }
        match self.store.deployment_in_progress(&env.name)? {
            Some(deployment) => self.drive(&config, &env, deployment).await?,
            None => self.maintain(&config, &env).await?,
        }
        let routing = self.store.routing(&env.name)?;
        self.verify(&env, &routing)?;
        self.apply_table(&config, &env).await
    }

    /// Logs a warning unless the same one was the last logged for `topic`:
    /// a condition that persists is told once, not every tick.
    fn warn_once(&mut self, topic: &'static str, message: &str) {
        if self.warned.get(topic).map(String::as_str) != Some(message) {
            tracing::warn!("{message}");
            self.warned.insert(topic, message.to_string());
        }
    }

    /// The stable internal port of every service, and of the preview
    /// listener (under [`table::PREVIEW`]): read once, assigned on first use.
    fn ports(&mut self, config: &Config) -> Result<HashMap<String, u16>> {
        let names: Vec<&str> = config
            .services
            .iter()
            .map(|s| s.name.as_str())
            .chain([table::PREVIEW])
            .collect();
        if names.iter().all(|n| self.ports.contains_key(*n)) {
            return Ok(self.ports.clone());
        }
        for (env, name, port) in self.store.internal_ports()? {
            if env == self.name {
                self.ports.insert(name, port);
            }
        }
        for name in names {
            if self.ports.contains_key(name) {
                continue;
            }
            // Another environment may have claimed the same free port first.
            let mut attempts = 0;
            let port = loop {
                match self
                    .store
                    .internal_port(&self.name, name, self.free_port()?)
                {
                    Ok(port) => break port,
                    Err(hifi_store::Error::AlreadyExists { .. }) if attempts < 5 => attempts += 1,
                    Err(e) => return Err(e.into()),
                }
            };
            self.ports.insert(name.to_string(), port);
        }
        Ok(self.ports.clone())
    }

    /// A free port that is reserved for nothing: not an internal or preview
    /// port of any environment, and not the port of any recorded instance
    /// (a crashed one restarts on its own port, so no other may take it).
    fn free_port(&self) -> Result<u16> {
        let mut reserved: HashSet<u16> = self
            .store
            .internal_ports()?
            .into_iter()
            .map(|(_, _, port)| port)
            .collect();
        for row in self.store.instances(None)? {
            if let Ok(instance) = serde_json::from_str::<hifi_runtime::Instance>(&row.handle) {
                reserved.insert(instance.addr.port());
            }
        }
        for _ in 0..20 {
            let port = free_port()?;
            if !reserved.contains(&port) {
                return Ok(port);
            }
        }
        Err(Error::Other(
            "could not find a free port outside the reserved ones".into(),
        ))
    }

    fn artifacts(&self) -> Artifacts {
        Artifacts::new(&self.shared.options.root.join(".hifi"))
    }

    /// The spec of one service of a release in a slot.
    fn spec(
        &mut self,
        config: &Config,
        env: &Environment,
        slot: Slot,
        release: &ReleaseId,
        service: &ServiceVersion,
        port: u16,
    ) -> Result<Result<InstanceSpec, String>> {
        let ports = self.ports(config)?;
        let artifacts = self.artifacts();
        let builder = SpecBuilder {
            root: &self.shared.options.root,
            env,
            services: &config.services,
            internal_ports: &ports,
            artifacts: &artifacts,
        };
        Ok(builder.spec(
            &service.recipe,
            slot,
            release.as_str(),
            &service.version,
            port,
        ))
    }

    fn update(&mut self, id: i64, update: Update<'_>) -> Result<Deployment> {
        let audit = self.audit();
        Ok(self.store.update_deployment(&audit, id, update)?)
    }

    /// Pushes the table of the stored routing; a refusal is logged and
    /// retried next tick.
    async fn apply_table(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let routing = self.store.routing(&env.name)?;
        match self.push(config, env, &routing).await {
            Ok(()) => {
                self.warned.remove("table");
            }
            Err(e) => self.warn_once(
                "table",
                &format!("{}: the proxy refused the table: {e}", env.name),
            ),
        }
        Ok(())
    }

    /// Pushes the table `routing` implies (see the module doc for why
    /// callers push before they record).
    async fn push(
        &mut self,
        config: &Config,
        env: &Environment,
        routing: &Routing,
    ) -> Result<(), String> {
        let running = instances::load(&self.store, &env.name).map_err(|e| e.to_string())?;
        let ports = self.ports(config).map_err(|e| e.to_string())?;
        let inputs = table::Inputs {
            env,
            services: &config.services,
            routing,
            instances: &running,
            internal_ports: &ports,
            preview_token: instances::preview_token(env)?,
        };
        let generation = self.shared.proxy_generation();
        match table::build(&inputs) {
            Some(spec) => {
                let json = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
                if self
                    .last_table
                    .as_ref()
                    .is_some_and(|(g, last)| *g == generation && *last == json)
                {
                    return Ok(());
                }
                self.shared
                    .proxy
                    .put_table(&spec)
                    .await
                    .map_err(|e| e.to_string())?;
                self.last_table = Some((generation, json));
            }
            None => {
                if self.last_table.take().is_some() {
                    self.shared
                        .proxy
                        .remove_table(&env.name)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
}
