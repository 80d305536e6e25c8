//! `hifi manifests`: the Kubernetes objects of an environment, as YAML, for
//! review or for GitOps tools (Argo CD, Flux).
//!
//! It renders exactly what the controller applies, with the same functions
//! (`hifi_runtime::kubernetes::objects`, the controller's spec builder and
//! in-cluster table), for the environment with a release live in it: the
//! proxy's objects, the routing ConfigMap with that release active, and
//! each service's Deployment and Service in the release's slot (the slot it
//! runs in, else the one it would start in). Nothing is asked of a
//! cluster; the output depends only on `hifi.toml` and the store, so two
//! runs diff clean. `${VAR}` values of `[environment.vars]` are secrets:
//! the Deployments take them from a Secret per slot, which is printed
//! without its values (its keys are named in an annotation), so the output
//! can go into a repository; hifi fills it from its own environment when
//! it applies it.
//!
//! `--rbac` prints instead the Role hifi needs in the environment's
//! namespace.

use std::collections::{BTreeSet, HashMap};

use hifi_artifacts::Artifacts;
use hifi_controller::instances::{Secrets, SpecBuilder};
use hifi_controller::plan::Running;
use hifi_core::rollout::Placement;
use hifi_core::{Action, Environment, Health, ReleaseId, Routing, RuntimeKind};
use hifi_runtime::kubernetes::objects::{self, Object};
use hifi_runtime::kubernetes::target::{Target, repository};
use hifi_runtime::{Instance, InstanceId, InstanceStatus, Port, Program};
use hifi_store::ArtifactKind;

use crate::error::{Error, Result};
use crate::project::{Actor, Project};

impl Project {
    /// The objects `env` runs with `release` (default: its live release,
    /// else its latest composition) live, in apply order.
    pub fn manifests(
        &self,
        actor: &Actor,
        env: &str,
        release: Option<&str>,
    ) -> Result<Vec<Object>> {
        self.authorize(actor, Action::Read)?;
        let env = self.environment(env)?.clone();
        let target = self.kubernetes_target(&env)?;
        let release = match release {
            Some(prefix) => self.resolve_release(prefix)?,
            None => self.manifest_release(&env)?,
        };
        let record = self.store.release(&release)?;
        let routing = self.store.routing(&env.name)?;
        let slot = [&routing.active, &routing.candidate, &routing.standby]
            .into_iter()
            .flatten()
            .find(|p| p.release == release)
            .map_or_else(|| routing.idle_slot(), |p| p.slot);
        let placement = Placement {
            slot,
            release: release.clone(),
        };

        let mut objects = objects::proxy_objects(
            &target,
            &self
                .config
                .services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        );
        let artifacts = Artifacts::new(&self.layout.artifacts());
        let ports = HashMap::new();
        let reserved = BTreeSet::new();
        let builder = SpecBuilder {
            layout: &self.layout,
            env: &env,
            services: &self.config.services,
            internal_ports: &ports,
            reserved_ports: &reserved,
            artifacts: &artifacts,
            // The output must not hold them, so it needs none of them set.
            secrets: Secrets::Leave,
        };
        let mut running = Vec::new();
        for version in &record.services {
            let mut spec = builder
                .spec(version, 0, slot, &release, Port::Any)
                .map_err(Error::BadInput)?;
            let Program::Image { image, .. } = &spec.program else {
                continue;
            };
            let pushed = self.pushed_reference(&target, &version.service, image, &release)?;
            if let Program::Image { image, .. } = &mut spec.program {
                image.clone_from(&pushed);
            }
            objects.extend(objects::slot_objects(&target, &spec, &pushed));
            running.push(Running {
                instance: Instance {
                    id: InstanceId::new(format!(
                        "kubernetes:{}/{}",
                        target.namespace, version.service
                    )),
                    addr: std::net::SocketAddr::from(([0, 0, 0, 0], 80)),
                    env: env.name.clone(),
                    slot,
                    service: version.service.clone(),
                    replica: 0,
                    release: release.clone(),
                    runtime: RuntimeKind::Kubernetes,
                },
                health: Health::Healthy,
                restarts: 0,
                changed_at: 0,
                status: InstanceStatus::Running,
            });
        }
        let live = Routing {
            active: Some(placement),
            ..Routing::default()
        };
        if let Some(table) =
            hifi_controller::cluster::table(&env, &self.config.services, &live, &running)
        {
            let json = hifi_controller::cluster::table_json(&table)?;
            objects.push(objects::routing_config_map(&target, &json));
        }
        objects::without_secret_values(&mut objects);
        objects::sort(&mut objects);
        Ok(objects)
    }

    /// The Role hifi needs in `env`'s namespace.
    pub fn rbac(&self, actor: &Actor, env: &str) -> Result<Object> {
        self.authorize(actor, Action::Read)?;
        let env = self.environment(env)?.clone();
        Ok(objects::hifi_role(&self.kubernetes_target(&env)?))
    }

    fn kubernetes_target(&self, env: &Environment) -> Result<Target> {
        Target::of(&self.config, env).ok_or_else(|| Error::NotOnKubernetes {
            env: env.name.clone(),
            runtime: env.runtime.to_string(),
        })
    }

    /// The release `hifi manifests ENV` shows: the live one, else the
    /// latest composition.
    fn manifest_release(&self, env: &Environment) -> Result<ReleaseId> {
        if let Some(live) = self.store.live_release(&env.name)? {
            return Ok(live);
        }
        match self.store.latest_composition(&env.name)? {
            Some(composition) => Ok(composition.release),
            None => Err(Error::NothingLive {
                env: env.name.clone(),
            }),
        }
    }

    /// `<registry>/<service>@<digest>` of an image as recorded when it was
    /// pushed.
    fn pushed_reference(
        &self,
        target: &Target,
        service: &str,
        image_id: &str,
        release: &ReleaseId,
    ) -> Result<String> {
        let repository = repository(&target.registry, service);
        let key = hifi_store::pushed_key(&repository, image_id);
        match self
            .store
            .artifact_digest(service, ArtifactKind::Pushed, &key)?
        {
            Some(digest) => Ok(format!("{repository}@{digest}")),
            None => Err(Error::NotPushed {
                env: target.env.clone(),
                release: release.clone(),
                service: service.to_owned(),
                repository,
            }),
        }
    }
}
