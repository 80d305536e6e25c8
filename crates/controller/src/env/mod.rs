//! The reconciler of one environment: observe, plan, execute. Each tick it
//! reads the desired state from the store and what runs from the runtime
//! (`observe`), asks the pure planner what to do ([`crate::plan`]), performs
//! the actions (`execute.rs`), and always ends by pushing the routing table
//! the stored state implies — a failing step never keeps the proxy from
//! serving what was recorded.
//!
//! The rule for crash safety: a step is recorded before the effects that
//! follow from it (a candidate is in the routing before its instances
//! start; an instance is recorded the moment it is spawned), and every
//! effect is idempotent, so a controller killed anywhere redoes at most one
//! step. Traffic is the one exception, on purpose: a new routing is pushed
//! to the proxy *before* it is recorded, so a refused table (a port taken by
//! another program) fails the deployment instead of recording a state
//! nothing serves; a crash between the two is repaired by redoing the step.

mod execute;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use hifi_artifacts::Artifacts;
use hifi_core::release::ServiceVersion;
use hifi_core::rollout::Placement;
use hifi_core::{Config, Environment, ReleaseId, Routing, RuntimeKind, Slot, Verdict};
use hifi_proxy::StatsQuery;
use hifi_runtime::{InstanceSpec, Port, Program, Runtime, free_port};
use hifi_store::{Audit, Store};
use serde_json::Value;

use crate::clock::{Clock, wall_ms};
use crate::error::{Error, Result};
use crate::instances::{self, Secrets, SpecBuilder};
use crate::plan::{self, Notes, Observed, ReleaseFacts, Running};
use crate::{Shared, table};

/// The reconciler of one environment.
pub(crate) struct EnvReconciler<R: Runtime, C: Clock> {
    name: String,
    shared: Arc<Shared<R, C>>,
    store: Store,
    /// The table last accepted by the proxy, and the proxy generation it went to.
    last_table: Option<(u64, Value)>,
    /// Stable internal ports already read or assigned.
    ports: HashMap<String, u16>,
    /// The planner's notes.
    notes: Notes,
    /// The last "slot unavailable" reason recorded, so it is told once.
    unavailable: HashMap<Slot, String>,
    /// The last warning logged per topic.
    warned: HashMap<&'static str, String>,
    /// Where and for which services the in-cluster proxy's objects were
    /// last applied (Kubernetes environments).
    cluster_proxy: Option<(hifi_runtime::kubernetes::Target, Vec<String>)>,
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
            notes: Notes::default(),
            unavailable: HashMap::new(),
            warned: HashMap::new(),
            cluster_proxy: None,
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

    /// One reconciliation pass: observe, plan, execute, then push the table
    /// whatever happened. The first error is returned after the push, for
    /// the error policy.
    pub(crate) async fn tick(&mut self) -> Result<()> {
        let config = self.shared.config();
        let Ok(env) = config.environment(&self.name) else {
            return Ok(());
        };
        let env = env.clone();
        let outcome = self.step(&config, &env).await;
        let pushed = self.apply_table(&config, &env).await;
        outcome.and(pushed)
    }

    async fn step(&mut self, config: &Config, env: &Environment) -> Result<()> {
        let observed = self.observe(config, env).await?;
        let plan = plan::plan(&observed);
        self.notes = plan.notes;
        for action in plan.actions {
            let supervision = action.is_supervision();
            let what = action.instance().map(|r| r.instance.describe());
            match self.execute(config, env, action).await {
                Ok(()) => {}
                // Supervision problems are their own to report; they must
                // not hold up the deployment in progress.
                Err(e) if supervision => {
                    let what = what.unwrap_or_else(|| env.name.clone());
                    self.warn_once("instance", &format!("{what}: {e}"));
                }
                // The rest of the plan followed from this step: stop here.
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Everything the planner decides on, read now.
    async fn observe(&mut self, config: &Config, env: &Environment) -> Result<Observed> {
        let routing = self.store.routing(&env.name)?;
        let deployment = self.store.deployment_in_progress(&env.name)?;
        let rows = self.store.instances(Some(&env.name))?;
        let instances = instances::observe(rows, &self.shared.runtime).await?;
        let mut releases = HashMap::new();
        let named = routing
            .placements()
            .map(|p| p.release.clone())
            .chain(deployment.as_ref().map(|d| d.release.clone()));
        for id in named {
            if releases.contains_key(&id) {
                continue;
            }
            if let Some(facts) = self.release_facts(config, env, &id)? {
                releases.insert(id, facts);
            }
        }
        let extensions = match &deployment {
            Some(d) => {
                let since = d.step_started_at.unwrap_or(0);
                self.store
                    .analyses(d.id)?
                    .iter()
                    .filter(|a| a.step == d.step && a.verdict == Verdict::Extend && a.at >= since)
                    .count() as u32
            }
            None => 0,
        };
        let mut observed = Observed {
            now: self.now(),
            env: env.clone(),
            start_timeout_ms: self.shared.options.start_timeout.as_millis() as i64,
            routing,
            deployment,
            releases,
            instances,
            window: None,
            stable_window: None,
            extensions,
            notes: self.notes.clone(),
        };
        if let Some(wanted) = plan::window_wanted(&observed) {
            // The window is the step's length by hifi's clock, ending now by
            // the proxy's (wall) clock: the two agree in production, and a
            // test that moves its clock forward still judges the requests it
            // really sent.
            let since = (wall_ms() - wanted.age_ms).max(0) as u64;
            observed.window = Some(self.window(env, wanted.slot, since).await?);
            observed.stable_window = Some(self.window(env, wanted.stable, since).await?);
        }
        Ok(observed)
    }

    /// What the proxy measured for `slot` since `since_ms` (unix ms).
    async fn window(
        &mut self,
        env: &Environment,
        slot: Slot,
        since_ms: u64,
    ) -> Result<hifi_core::rollout::Window> {
        let query = StatsQuery {
            env: env.name.clone(),
            slot: slot.to_string(),
            service: None,
            since_ms,
            // A user who gave up on a request after waiting longer than a
            // canary's p99 may be was failed by the slot, not impatient.
            slow_ms: Some(env.canary.max_p99_ms),
        };
        let stats = match self.shared.runtime.cluster_plane(&env.name) {
            Some(plane) => crate::cluster::stats(&plane, &query).await?,
            None => self.shared.proxy.stats(&query).await?,
        };
        // Only outcomes that were the slot's doing are judged: what clients
        // ended themselves (before the latency limit) is counted apart.
        let client_ended = stats.client_closed
            + stats.bad_requests
            + stats.abandoned.saturating_sub(stats.abandoned_slow);
        let requests = stats.requests.saturating_sub(client_ended);
        Ok(hifi_core::rollout::Window {
            requests,
            errors: stats.errors,
            client_ended,
            error_ratio: if requests == 0 {
                0.0
            } else {
                stats.errors as f64 / requests as f64
            },
            p50_ms: stats.p50_ms.unwrap_or(0.0),
            p99_ms: stats.p99_ms.unwrap_or(0.0),
        })
    }

    /// What the planner needs to know of a release (`None` if it is not
    /// recorded at all).
    fn release_facts(
        &self,
        config: &Config,
        env: &Environment,
        id: &ReleaseId,
    ) -> Result<Option<ReleaseFacts>> {
        let release = match self.store.release(id) {
            Ok(release) => release,
            Err(hifi_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let artifacts = self.artifacts();
        Ok(Some(ReleaseFacts {
            services: release
                .services
                .iter()
                .map(|s| {
                    let replicas = config
                        .services
                        .iter()
                        .find(|c| c.name == s.service)
                        .map_or(1, |c| c.replicas);
                    // A runtime that scales a slot itself has one
                    // instance per service for the controller to watch.
                    (s.service.clone(), env.runtime.instances_per_slot(replicas))
                })
                .collect(),
            intact: release.recomputed_id() == *id,
            artifacts_ready: release
                .services
                .iter()
                .all(|s| artifacts.exists(&s.recipe, &s.version)),
            gate: self.store.facts(id, &env.name)?,
        }))
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
                let candidate = self.free_internal_port()?;
                match self.store.internal_port(&self.name, name, candidate) {
                    Ok(port) => break port,
                    Err(hifi_store::Error::AlreadyExists { .. }) if attempts < 5 => attempts += 1,
                    Err(e) => return Err(e.into()),
                }
            };
            self.ports.insert(name.to_string(), port);
        }
        Ok(self.ports.clone())
    }

    /// Host ports no new instance may take: every internal and preview port
    /// of every environment, and the port of every recorded instance (a
    /// crashed one restarts on its own port, so no other may take it).
    fn reserved_ports(&self) -> Result<BTreeSet<u16>> {
        let mut reserved: BTreeSet<u16> = self
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
        Ok(reserved)
    }

    /// A free port for one of the proxy's internal listeners, outside the
    /// reserved ones.
    fn free_internal_port(&self) -> Result<u16> {
        let reserved = self.reserved_ports()?;
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
        Artifacts::new(&self.shared.options.layout.artifacts())
    }

    /// The spec of one service of a release in a slot. On Kubernetes the
    /// image is the one pushed to the registry, by its digest there
    /// (pushed now if it was not yet).
    async fn spec(
        &mut self,
        config: &Config,
        env: &Environment,
        placement: &Placement,
        service: &ServiceVersion,
        replica: u16,
        port: Port,
    ) -> Result<Result<InstanceSpec, String>> {
        let mut spec = match self.local_spec(config, env, placement, service, replica, port)? {
            Ok(spec) => spec,
            Err(reason) => return Ok(Err(reason)),
        };
        if env.runtime == RuntimeKind::Kubernetes
            && let Program::Image { image, .. } = &mut spec.program
        {
            match self.pushed(config, &service.service, image).await? {
                Ok(reference) => *image = reference,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        Ok(Ok(spec))
    }

    /// `<registry>/<service>@<digest>` of image `image_id` of `service`:
    /// from the record of its push, else pushed now from the Docker engine
    /// that built it (a registry added after the release was composed).
    async fn pushed(
        &mut self,
        config: &Config,
        service: &str,
        image_id: &str,
    ) -> Result<Result<String, String>> {
        let Some(registry) = &config.registry else {
            return Ok(Err(format!(
                "{} runs on Kubernetes but hifi.toml has no [registry]",
                self.name
            )));
        };
        let repository = hifi_runtime::kubernetes::target::repository(&registry.url, service);
        let key = hifi_store::pushed_key(&repository, image_id);
        if let Some(digest) =
            self.store
                .artifact_digest(service, hifi_store::ArtifactKind::Pushed, &key)?
        {
            return Ok(Ok(format!("{repository}@{digest}")));
        }
        let Some(id) = hifi_runtime::docker::ImageId::parse(image_id) else {
            return Ok(Err(format!(
                "`{image_id}` of service {service} is not an image id"
            )));
        };
        let engine = hifi_runtime::docker::Engine::from_env();
        let log = self
            .shared
            .options
            .layout
            .artifacts()
            .join(service)
            .join("push.log");
        match hifi_runtime::docker::push_image(&engine, &id, &repository, &log).await {
            Ok(digest) => {
                let now = self.now();
                self.store.record_artifact(
                    service,
                    hifi_store::ArtifactKind::Pushed,
                    &key,
                    &digest,
                    now,
                )?;
                Ok(Ok(format!("{repository}@{digest}")))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// The spec of one service of a release in a slot, as the local
    /// runtimes run it.
    fn local_spec(
        &mut self,
        config: &Config,
        env: &Environment,
        placement: &Placement,
        service: &ServiceVersion,
        replica: u16,
        port: Port,
    ) -> Result<Result<InstanceSpec, String>> {
        let ports = self.ports(config)?;
        let reserved = self.reserved_ports()?;
        let artifacts = self.artifacts();
        let builder = SpecBuilder {
            layout: &self.shared.options.layout,
            env,
            services: &config.services,
            internal_ports: &ports,
            reserved_ports: &reserved,
            artifacts: &artifacts,
            secrets: Secrets::Resolve,
        };
        Ok(builder.spec(service, replica, placement.slot, &placement.release, port))
    }

    /// The instances of this environment as they are now.
    async fn running(&mut self) -> Result<Vec<Running>> {
        let rows = self.store.instances(Some(&self.name))?;
        instances::observe(rows, &self.shared.runtime).await
    }

    /// Pushes the table of the stored routing; a refusal is logged (once)
    /// and retried next tick.
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

    /// The cluster's side of [`Self::push`]: the proxy's objects applied
    /// (again when the services change), then the table written to the
    /// ConfigMap its replicas watch.
    async fn push_to_cluster(
        &mut self,
        plane: &hifi_runtime::kubernetes::ProxyPlane,
        config: &Config,
        env: &Environment,
        routing: &Routing,
        running: &[Running],
    ) -> Result<()> {
        let services: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
        let target = plane.target().clone();
        if self.cluster_proxy.as_ref() != Some(&(target.clone(), services.clone())) {
            plane.ensure(&services).await?;
            self.cluster_proxy = Some((target, services));
        }
        let spec = crate::cluster::table(env, &config.services, routing, running);
        let json = spec
            .as_ref()
            .map(crate::cluster::table_json)
            .transpose()?
            .map(serde_json::Value::String)
            .unwrap_or(serde_json::Value::Null);
        // The generation plays no part: the ConfigMap outlives any proxy pod.
        if self
            .last_table
            .as_ref()
            .is_some_and(|(_, last)| *last == json)
        {
            return Ok(());
        }
        match &json {
            serde_json::Value::String(text) => plane.put_table(text).await?,
            _ => plane.remove_table().await?,
        }
        self.last_table = Some((0, json));
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
        let running = self.running().await.map_err(|e| e.to_string())?;
        let ports = self.ports(config).map_err(|e| e.to_string())?;
        let mut releases = Vec::new();
        for placement in [&routing.active, &routing.candidate, &routing.standby]
            .into_iter()
            .flatten()
        {
            releases.push(
                self.store
                    .release(&placement.release)
                    .map_err(|e| e.to_string())?,
            );
        }
        let inputs = table::Inputs {
            env,
            services: &config.services,
            routing,
            instances: &running,
            internal_ports: &ports,
            preview_token: instances::preview_token(env)?,
            releases: &releases,
        };
        if let Some(plane) = self.shared.runtime.cluster_plane(&env.name) {
            return self
                .push_to_cluster(&plane, config, env, routing, &running)
                .await
                .map_err(|e| e.to_string());
        }
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
