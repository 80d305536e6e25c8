//! Service instances of one environment: how one is specified (program,
//! port wish, environment variables), started, recorded, observed and
//! stopped. Every start is recorded in the store right away, so an instance
//! started just before a controller crash is re-adopted, never orphaned.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use hifi_artifacts::Artifacts;
use hifi_core::config::interpolate;
use hifi_core::event::EventKind;
use hifi_core::release::ServiceVersion;
use hifi_core::{Environment, Health, Layout, ReleaseId, Service, Slot};
use hifi_runtime::{Instance, InstanceSpec, InstanceStatus, Port, Program, Runtime};
use hifi_store::{Audit, InstanceRow, Store};

use crate::error::{Error, Result};
use crate::plan::Running;

/// The name a service's peers find its internal address under.
pub fn url_var(service: &str) -> String {
    format!(
        "HIFI_URL_{}",
        service.to_ascii_uppercase().replace('-', "_")
    )
}

/// Whether a value of `[environment.vars]` takes anything from hifi's own
/// environment (`${NAME}`): then it is a secret.
pub fn is_secret(value: &str) -> bool {
    value.contains("${")
}

/// How `${NAME}` values are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// From hifi's own environment (an unset name is an error): what
    /// instances are started with.
    Resolve,
    /// Left empty: for rendering objects that must not hold them (`hifi
    /// manifests`), which then needs none of them set.
    Leave,
}

/// The environment variables every instance of `env` gets, besides `PORT`:
/// where hifi put it, where its peers are, and the environment's `vars`
/// with `${NAME}` filled from hifi's own environment (as `secrets` says);
/// with the names of the vars that took anything from it.
pub fn instance_vars(
    env: &Environment,
    services: &[Service],
    internal_ports: &HashMap<String, u16>,
    slot: Slot,
    release: &ReleaseId,
    service: &str,
    secrets: Secrets,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>), String> {
    let mut vars = BTreeMap::new();
    let mut secret_vars = BTreeSet::new();
    for (name, value) in &env.vars {
        let value = if is_secret(value) {
            secret_vars.insert(name.clone());
            match secrets {
                Secrets::Resolve => interpolate(value, |var| std::env::var(var).ok())
                    .map_err(|e| format!("[environment.vars] {name} of {}: {e}", env.name))?,
                Secrets::Leave => String::new(),
            }
        } else {
            value.clone()
        };
        vars.insert(name.clone(), value);
    }
    for peer in services {
        if env.runtime.runs_data_plane() {
            // The peer's stable Service, leading to the in-cluster proxy.
            vars.insert(
                url_var(&peer.name),
                hifi_runtime::kubernetes::objects::service_url(&peer.name),
            );
        } else if let Some(port) = internal_ports.get(&peer.name) {
            vars.insert(url_var(&peer.name), format!("http://127.0.0.1:{port}"));
        }
    }
    vars.insert("HIFI_ENV".into(), env.name.clone());
    vars.insert("HIFI_SLOT".into(), slot.to_string());
    vars.insert("HIFI_RELEASE".into(), release.as_str().to_string());
    vars.insert("HIFI_SERVICE".into(), service.to_string());
    Ok((vars, secret_vars))
}

/// Builds the spec of one instance.
pub struct SpecBuilder<'a> {
    /// The project's paths.
    pub layout: &'a Layout,
    /// The environment.
    pub env: &'a Environment,
    /// The project's services.
    pub services: &'a [Service],
    /// Stable internal ports.
    pub internal_ports: &'a HashMap<String, u16>,
    /// Host ports no instance may take.
    pub reserved_ports: &'a BTreeSet<u16>,
    /// Artifacts.
    pub artifacts: &'a Artifacts,
    /// How `${NAME}` values are filled.
    pub secrets: Secrets,
}

impl SpecBuilder<'_> {
    /// How many instances of `service` each slot has: scale is read from
    /// the current `hifi.toml`, never from a release.
    pub fn replicas(&self, service: &str) -> u16 {
        self.services
            .iter()
            .find(|s| s.name == service)
            .map_or(1, |s| s.replicas)
    }

    /// What an instance of `version` runs, checked against what was
    /// recorded when it was built: a local process runs a linked copy of
    /// the artifact whose digest still matches, a container runs the
    /// recorded image id.
    fn program(
        &self,
        version: &ServiceVersion,
        release: &ReleaseId,
        slot: Slot,
        replica: u16,
    ) -> Result<Program, String> {
        let service = &version.recipe;
        if self.env.runtime.runs_images() {
            let image = version.image_id.clone().ok_or_else(|| {
                format!(
                    "release {release} has no image of service {}: it was composed while no environment ran containers; compose a new release (a new commit) to build one",
                    service.name
                )
            })?;
            return Ok(Program::Image {
                image,
                command: None,
            });
        }
        if let Some(expected) = &version.digest {
            self.artifacts
                .verify(service, &version.version, expected)
                .map_err(|e| {
                    format!("{e}; restore it, or compose a new release and verify that")
                })?;
        }
        Ok(Program::Command {
            command: service.run.clone(),
            workdir: self.layout.instance_workdir(
                &self.env.name,
                slot.as_str(),
                &service.name,
                replica,
            ),
            artifact: Some(self.artifacts.dir(service, &version.version)),
        })
    }

    /// The spec of replica `replica` of `version` (a service of release
    /// `release`) in `slot`. Its recipe is the one recorded with the
    /// release, so an instance runs exactly the command, health path and
    /// protocol that were verified.
    pub fn spec(
        &self,
        version: &ServiceVersion,
        replica: u16,
        slot: Slot,
        release: &ReleaseId,
        port: Port,
    ) -> Result<InstanceSpec, String> {
        let service = &version.recipe;
        let (vars, secret_vars) = instance_vars(
            self.env,
            self.services,
            self.internal_ports,
            slot,
            release,
            &service.name,
            self.secrets,
        )?;
        Ok(InstanceSpec {
            env: self.env.name.clone(),
            slot,
            service: service.name.clone(),
            replica,
            replicas: self.replicas(&service.name),
            release: release.clone(),
            runtime: self.env.runtime,
            program: self.program(version, release, slot, replica)?,
            port,
            reserved_ports: self.reserved_ports.clone(),
            vars,
            secret_vars,
            log: self
                .layout
                .instance_log(&self.env.name, slot.as_str(), &service.name),
            health_path: service.health.clone(),
            protocol: service.protocol,
        })
    }
}

/// Instances as recorded (`store.instances(..)`), with what the runtime
/// says of each now.
pub async fn observe<R: Runtime>(rows: Vec<InstanceRow>, runtime: &R) -> Result<Vec<Running>> {
    let mut running = Vec::new();
    for row in rows {
        let instance: Instance = serde_json::from_str(&row.handle).map_err(|e| {
            Error::Other(format!(
                "the store holds an unreadable instance of {} ({}): {e}",
                row.service, row.slot
            ))
        })?;
        let status = runtime.status(&instance).await;
        running.push(Running {
            instance,
            health: row.health,
            restarts: row.restarts,
            changed_at: row.updated_at,
            status,
        });
    }
    Ok(running)
}

/// Records an instance with an event.
pub fn record(
    store: &mut Store,
    audit: &Audit,
    running: &Running,
    kind: EventKind,
    message: &str,
) -> Result<()> {
    let i = &running.instance;
    let row = InstanceRow {
        env: i.env.clone(),
        slot: i.slot,
        service: i.service.clone(),
        replica: i.replica,
        release: i.release.clone(),
        handle: serde_json::to_string(i).map_err(|e| Error::Other(e.to_string()))?,
        health: running.health,
        restarts: running.restarts,
        updated_at: audit.at,
    };
    store.put_instance(audit, &row, kind, message)?;
    Ok(())
}

/// Starts an instance and records it as starting before anything else can
/// happen, so a crash right after the start cannot orphan it.
pub async fn start<R: Runtime>(
    runtime: &R,
    store: &mut Store,
    audit: &Audit,
    spec: &InstanceSpec,
    restarts: i64,
) -> Result<Running> {
    let instance = runtime.start(spec).await?;
    record_start(runtime, store, audit, spec, instance, restarts).await
}

/// Records an instance `runtime` just started from `spec` as starting; one
/// that cannot be recorded is stopped (unrecorded, it would run unseen).
pub async fn record_start<R: Runtime>(
    runtime: &R,
    store: &mut Store,
    audit: &Audit,
    spec: &InstanceSpec,
    instance: Instance,
    restarts: i64,
) -> Result<Running> {
    let running = Running {
        instance,
        health: Health::Starting,
        restarts,
        changed_at: audit.at,
        status: InstanceStatus::Running,
    };
    let message = format!(
        "{} started on {} (release {})",
        running.instance.describe(),
        running.instance.addr,
        spec.release
    );
    if let Err(e) = record(store, audit, &running, EventKind::InstanceStarted, &message) {
        // Unrecorded, it would run on unseen: stop it and report.
        let _ = runtime
            .stop(&running.instance, Duration::from_secs(5))
            .await;
        return Err(e);
    }
    Ok(running)
}

/// Stops an instance and forgets it; `why` goes into the event.
pub async fn stop<R: Runtime>(
    runtime: &R,
    store: &mut Store,
    audit: &Audit,
    running: &Running,
    grace: Duration,
    why: &str,
) -> Result<()> {
    runtime.stop(&running.instance, grace).await?;
    let i = &running.instance;
    let message = format!("{} stopped: {why}", i.describe());
    store.remove_instance(audit, (&i.env, i.slot, &i.service, i.replica), &message)?;
    Ok(())
}

/// The preview token of `env`, filled from hifi's environment.
pub fn preview_token(env: &Environment) -> Result<Option<String>, String> {
    env.preview_token
        .as_deref()
        .map(|t| interpolate(t, |v| std::env::var(v).ok()))
        .transpose()
        .map_err(|e| format!("preview_token of {}: {e}", env.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        let config = hifi_core::Config::parse(
            r#"
[project]
name = "shop"

[[service]]
name = "web"
path = "web"
run = "true"
health = "/"
route = "/"

[[environment]]
name = "dev"
port = 8100
cards_from = "In Dev"
[environment.vars]
GREETING = "hello"
PAYMENT_KEY = "${HIFI_TEST_SECRET_THAT_IS_NEVER_SET}"
"#,
        )
        .expect("a valid config");
        config.environments[0].clone()
    }

    #[test]
    fn vars_from_hifis_environment_are_named_secrets_and_left_empty_when_asked() {
        let env = env();
        let release = ReleaseId::compute("r1", &[]);
        let (vars, secrets) = instance_vars(
            &env,
            &[],
            &HashMap::new(),
            Slot::Blue,
            &release,
            "web",
            Secrets::Leave,
        )
        .expect("nothing to resolve");
        assert_eq!(secrets, BTreeSet::from(["PAYMENT_KEY".to_owned()]));
        assert_eq!(vars["PAYMENT_KEY"], "");
        assert_eq!(vars["GREETING"], "hello");

        // Resolving one that is not set stops the start, naming it.
        let e = instance_vars(
            &env,
            &[],
            &HashMap::new(),
            Slot::Blue,
            &release,
            "web",
            Secrets::Resolve,
        )
        .expect_err("the secret is not set");
        assert!(
            e.contains("PAYMENT_KEY") && e.contains("HIFI_TEST_SECRET_THAT_IS_NEVER_SET"),
            "{e}"
        );
    }
}
