//! The reconciler of one environment. Each tick it reads the desired state
//! from the store, looks at what runs, and takes the next step — and every
//! step is written to the store *before* the effect it leads to, so a
//! controller killed at any point resumes from the last written step:
//!
//! - supervise: restart crashed instances (with backoff), probe health,
//!   stop instances no slot needs any more;
//! - drive the deployment in progress, one lifecycle state per tick:
//!   pending (fidelity gate) → building (artifacts) → starting (idle slot,
//!   health) → verifying (smoke, or canary steps judged on the proxy's
//!   figures) → live, or failed / aborted with the reason;
//! - otherwise keep the live state running (after `hifi down` or a reboot)
//!   and record verification once the active release has soaked;
//! - push the routing table to the proxy when it changed.
//!
//! Long waits (instance health, smoke, drains) happen inside a step, and the
//! step they belong to is already persisted, so redoing them after a crash
//! is safe: starting adopts instances that already run this release.
//!
//! `supervise` keeps instances alive and the live state running; `rollout`
//! drives deployments; this file holds the reconciler and its table push.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hifi_artifacts::Artifacts;
use hifi_core::deployment::DeploymentState;
use hifi_core::fidelity;
use hifi_core::rollout::{Judgement, Window, judge, step_due, step_weight};
use hifi_core::{Config, Environment, ReleaseId, Routing, Slot, Strategy};
use hifi_proxy::{DrainRequest, StatsQuery};
use hifi_runtime::{InstanceStatus, Runtime, free_port};
use hifi_store::{Analysis, Audit, Deployment, Store, Update};
use serde_json::Value;

use crate::clock::{Clock, wall_ms};
use crate::error::{Error, Result};
use crate::instances::{self, SpecBuilder};
use crate::table::{self, Running, health};
use crate::{ROLLBACK, Shared};

/// How often a running instance's health path is probed.
const PROBE_EVERY_MS: i64 = 1_000;
/// The longest wait between restarts of a crashing instance.
const MAX_BACKOFF_MS: i64 = 30_000;

/// The reconciler of one environment.
pub(crate) struct EnvReconciler<R: Runtime, C: Clock> {
    name: String,
    shared: Arc<Shared<R, C>>,
    store: Store,
    /// The table last accepted by the proxy, and the proxy generation it went to.
    last_table: Option<(u64, Value)>,
    /// When the current canary step may next be judged (after "too few requests").
    next_judgement: Option<(i64, i64)>,
    /// When each crashed instance may be restarted, by (slot, service).
    restart_at: HashMap<(String, String), i64>,
    last_probe: i64,
    verified: Option<ReleaseId>,
}

enum Ending {
    Failed,
    Aborted,
}

mod rollout;
mod supervise;

impl<R: Runtime, C: Clock> EnvReconciler<R, C> {
    pub(crate) fn new(name: String, shared: Arc<Shared<R, C>>) -> Result<Self> {
        let store = shared.open_store()?;
        Ok(EnvReconciler {
            name,
            shared,
            store,
            last_table: None,
            next_judgement: None,
            restart_at: HashMap::new(),
            last_probe: 0,
            verified: None,
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
        self.supervise(&config, &env).await?;
        match self.store.deployment_in_progress(&env.name)? {
            Some(deployment) => self.drive(&config, &env, deployment).await?,
            None => self.maintain(&config, &env).await?,
        }
        self.apply_table(&config, &env).await
    }

    /// The stable internal port of every service, and of the preview
    /// listener (under [`table::PREVIEW`]), assigned on first use.
    fn ports(&mut self, config: &Config, env: &Environment) -> Result<HashMap<String, u16>> {
        let mut ports = HashMap::new();
        let names = config.services.iter().map(|s| s.name.as_str());
        for name in names.chain([table::PREVIEW]) {
            // A port taken by an earlier assignment is retried with another.
            let mut attempts = 0;
            let port = loop {
                match self.store.internal_port(&env.name, name, free_port()?) {
                    Ok(port) => break port,
                    Err(hifi_store::Error::AlreadyExists { .. }) if attempts < 5 => attempts += 1,
                    Err(e) => return Err(e.into()),
                }
            };
            ports.insert(name.to_string(), port);
        }
        Ok(ports)
    }

    fn artifacts(&self) -> Artifacts {
        Artifacts::new(&self.shared.options.root.join(".hifi"))
    }

    fn update(&mut self, id: i64, update: Update<'_>) -> Result<Deployment> {
        let audit = self.audit();
        Ok(self.store.update_deployment(&audit, id, update)?)
    }

    /// Pushes the table of the stored routing; a refusal is logged and
    /// retried next tick.
    async fn apply_table(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let routing = self.store.routing(&env.name)?;
        if let Err(e) = self.push(config, env, &routing).await {
            tracing::warn!("{}: {e}", env.name);
        }
        Ok(())
    }

    /// Pushes the table `routing` implies. Traffic moves only through here,
    /// and callers push a new routing *before* recording it: if the proxy
    /// refuses (a port taken by another program), the deployment fails with
    /// the proxy's reason instead of claiming a state nothing serves.
    async fn push(
        &mut self,
        config: &Config,
        env: &Environment,
        routing: &Routing,
    ) -> Result<(), String> {
        let running = instances::load(&self.store, &env.name).map_err(|e| e.to_string())?;
        let ports = self.ports(config, env).map_err(|e| e.to_string())?;
        let preview_token = env
            .preview_token
            .as_deref()
            .map(|t| hifi_core::config::interpolate(t, |v| std::env::var(v).ok()))
            .transpose()
            .map_err(|e| format!("preview_token of {}: {e}", env.name))?;
        let inputs = table::Inputs {
            env,
            services: &config.services,
            routing,
            instances: &running,
            internal_ports: &ports,
            preview_token,
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
