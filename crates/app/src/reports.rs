//! Outcomes as every shell reports them: plain data that a local command
//! renders and the team server sends, so a remote command prints exactly
//! what a local one does.

use hifi_core::Release;
use serde::{Deserialize, Serialize};

use crate::compose::{Built, Composed, env_branch};
use crate::error::Result;
use crate::project::{Actor, Project};

/// What composing an environment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComposeReport {
    /// The environment.
    pub env: String,
    /// Its branch (`hifi/env/<env>`).
    pub branch: String,
    /// `up-to-date`, `new-release` or `known-release`.
    pub outcome: String,
    /// The release.
    pub release: Release,
    /// Each service's artifact.
    pub builds: Vec<ServiceBuild>,
    /// Each service's image, where an environment runs containers.
    pub images: Vec<ServiceBuild>,
    /// The progress lines composing printed, in order.
    pub steps: Vec<String>,
}

/// One artifact or image of a composition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceBuild {
    /// The service.
    pub service: String,
    /// How long building it took (ms); none when it was reused.
    pub built_ms: Option<u64>,
}

impl ComposeReport {
    /// The sentence that opens the report.
    pub fn headline(&self) -> String {
        let env = &self.env;
        match self.outcome.as_str() {
            "up-to-date" => format!("{env} is up to date"),
            "new-release" => format!("composed {env}: new release"),
            _ => format!("composed {env}: same content as an earlier release"),
        }
    }
}

fn builds(list: &[(String, Built)]) -> Vec<ServiceBuild> {
    list.iter()
        .map(|(service, built)| ServiceBuild {
            service: service.clone(),
            built_ms: match built {
                Built::Built(ms, _) => Some(u64::try_from(*ms).unwrap_or(u64::MAX)),
                Built::Reused => None,
            },
        })
        .collect()
}

impl From<(&str, Composed, Vec<String>)> for ComposeReport {
    fn from((env, composed, steps): (&str, Composed, Vec<String>)) -> ComposeReport {
        ComposeReport {
            env: env.to_string(),
            branch: env_branch(env),
            outcome: composed.outcome.as_str().to_string(),
            builds: builds(&composed.builds),
            images: builds(&composed.images),
            release: composed.release,
            steps,
        }
    }
}

impl Project {
    /// Composes `env` ([`Project::compose`]) and reports it; each progress
    /// line goes to `progress` as it happens and is kept in the report.
    pub fn compose_report(
        &mut self,
        actor: &Actor,
        env: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ComposeReport> {
        let mut steps = Vec::new();
        let composed = self.compose(actor, env, &mut |step: &str| {
            progress(step);
            steps.push(step.to_string());
        })?;
        Ok(ComposeReport::from((env, composed, steps)))
    }
}

/// A deployment and its events so far: what `--wait` follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// The deployment as it is now.
    pub deployment: crate::deploy::Deployment,
    /// Its events, oldest first (read after the deployment, so they include
    /// every step up to its state).
    pub events: Vec<crate::deploy::Event>,
    /// Whether a control plane runs to carry it on.
    pub control_plane_running: bool,
}

impl Project {
    /// Deployment `id` with its events so far.
    pub fn progress(&self, actor: &Actor, id: i64) -> Result<Progress> {
        let deployment = self.deployment(actor, id)?;
        let events = self.deployment_events(actor, id)?;
        Ok(Progress {
            deployment,
            events,
            control_plane_running: crate::control::running(self.layout()).is_some(),
        })
    }
}
