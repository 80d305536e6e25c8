//! What runs where, and what happened: the status of every environment and
//! each environment's history. Both read the store only, so they answer the
//! same whether or not the control plane runs (and say whether it does).

use hifi_core::{Action, CardId, Environment, ReleaseId, Routing};
use hifi_store::{Analysis, Deployment, Event, InstanceRow, Rejection};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Actor, Project};

/// The status of the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Status {
    /// Whether a control plane runs.
    pub running: bool,
    /// Its pid.
    pub pid: Option<u32>,
    /// Every environment asked for.
    pub environments: Vec<EnvStatus>,
    /// Every webhook (`[[notify]]`) and how its deliveries go.
    pub webhooks: Vec<WebhookStatus>,
}

/// How a webhook's deliveries go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookStatus {
    /// Its format and target, without secrets (`slack ${SLACK_WEBHOOK_URL}`,
    /// `json https://hooks.example.com/…`).
    pub webhook: String,
    /// Its event patterns.
    pub events: Vec<String>,
    /// Whether its endpoint is failing now.
    pub failing: bool,
    /// Since when (unix ms).
    pub failing_since: Option<i64>,
    /// Failed attempts at the next event.
    pub attempts: i64,
    /// When the next attempt is due (unix ms).
    pub next_attempt_at: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Events delivered.
    pub delivered: i64,
    /// Events given up on after retrying through the whole retry window.
    pub dropped: i64,
    /// Events recorded since the last one it got (not all are for it).
    pub behind: i64,
}

/// The status of one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvStatus {
    /// Its name.
    pub env: String,
    /// Its public port.
    pub port: u16,
    /// `blue-green` or `canary`.
    pub strategy: String,
    /// `cards from STAGE` or `promotes from ENV`.
    pub origin: String,
    /// What it serves.
    pub routing: Routing,
    /// Its latest composition (environments composed from cards).
    pub composed: Option<ReleaseId>,
    /// The cards its active release merged.
    pub cards: Vec<CardId>,
    /// What its active release runs, service by service, with the digests
    /// every start checks.
    pub artifacts: Vec<ArtifactView>,
    /// Whether its active release is verified here.
    pub verified: bool,
    /// Why its active release was rejected, if it was (it stays live until
    /// replaced).
    pub rejected: Option<Rejection>,
    /// Sign-offs of the release that would go here next, when any are needed.
    pub approvals: Option<ApprovalCount>,
    /// The deployment in progress.
    pub deployment: Option<Deployment>,
    /// Its instances.
    pub instances: Vec<InstanceRow>,
}

/// One service of a release as it runs: its version and the digests every
/// start checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactView {
    /// The service.
    pub service: String,
    /// Its version (the subtree id).
    pub version: String,
    /// The directory artifact's digest, when recorded.
    pub digest: Option<String>,
    /// The image's id, when one was built.
    pub image_id: Option<String>,
}

/// How far a release is in its sign-offs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalCount {
    /// The release.
    pub release: ReleaseId,
    /// Sign-offs it has.
    pub have: usize,
    /// Sign-offs needed.
    pub need: u32,
}

/// One deployment of an environment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The deployment.
    pub deployment: Deployment,
    /// Its events, oldest first.
    pub steps: Vec<Event>,
    /// The judgement of each canary step.
    pub analyses: Vec<Analysis>,
}

impl Project {
    /// What runs where (every environment, or one).
    pub fn status(&self, actor: &Actor, env: Option<&str>) -> Result<Status> {
        self.authorize(actor, Action::Read)?;
        let envs: Vec<&Environment> = match env {
            Some(name) => vec![self.environment(name)?],
            None => self.config.environments.iter().collect(),
        };
        let pid = crate::control::running(&self.layout);
        Ok(Status {
            running: pid.is_some(),
            pid,
            environments: envs
                .into_iter()
                .map(|e| self.env_status(e))
                .collect::<Result<_>>()?,
            webhooks: self.webhooks()?,
        })
    }

    /// Each configured webhook with its delivery state (none yet until the
    /// control plane first ran with it).
    fn webhooks(&self) -> Result<Vec<WebhookStatus>> {
        let last = self.store.last_event_seq()?;
        self.config
            .notify
            .iter()
            .map(|n| {
                let row = self.store.webhook(&n.key())?;
                let events = n.events.iter().map(ToString::to_string).collect();
                Ok(match row {
                    Some(row) => WebhookStatus {
                        webhook: n.describe(),
                        events,
                        failing: row.failing_since.is_some(),
                        failing_since: row.failing_since,
                        attempts: row.attempts,
                        next_attempt_at: row.next_at,
                        last_error: row.last_error,
                        delivered: row.delivered,
                        dropped: row.dropped,
                        behind: (last - row.cursor).max(0),
                    },
                    None => WebhookStatus {
                        webhook: n.describe(),
                        events,
                        failing: false,
                        failing_since: None,
                        attempts: 0,
                        next_attempt_at: None,
                        last_error: None,
                        delivered: 0,
                        dropped: 0,
                        behind: 0,
                    },
                })
            })
            .collect()
    }

    fn env_status(&self, env: &Environment) -> Result<EnvStatus> {
        let store = &self.store;
        let routing = store.routing(&env.name)?;
        let (cards, artifacts, verified, rejected) = match &routing.active {
            Some(active) => {
                let release = store.release(&active.release)?;
                (
                    release.cards.into_iter().map(|c| c.id).collect(),
                    release
                        .services
                        .into_iter()
                        .map(|s| ArtifactView {
                            service: s.service,
                            version: s.version,
                            digest: s.digest,
                            image_id: s.image_id,
                        })
                        .collect(),
                    store.verified_in(&active.release)?.contains(&env.name),
                    store.rejection(&active.release)?,
                )
            }
            None => (Vec::new(), Vec::new(), false, None),
        };
        // Approvals matter for what would go here next.
        let next = match self.next_release(&env.name, &env.origin) {
            Ok(release) => Some(release),
            Err(Error::NothingToApprove { .. }) => None,
            Err(e) => return Err(e),
        };
        let approvals = match next {
            Some(release) if env.approvals > 0 => Some(ApprovalCount {
                have: {
                    let approvers: Vec<String> = store
                        .approvals(&env.name, &release)?
                        .into_iter()
                        .map(|a| a.actor)
                        .collect();
                    hifi_core::fidelity::count_approvals(env, &approvers, None).have
                },
                need: env.approvals,
                release,
            }),
            _ => None,
        };
        Ok(EnvStatus {
            env: env.name.clone(),
            port: env.port,
            strategy: env.strategy.to_string(),
            origin: env.describe_origin(),
            routing,
            composed: store.latest_composition(&env.name)?.map(|c| c.release),
            cards,
            artifacts,
            verified,
            rejected,
            approvals,
            deployment: store.deployment_in_progress(&env.name)?,
            instances: store.instances(Some(&env.name))?,
        })
    }

    /// Every deployment of an environment, newest first, with its steps and
    /// canary figures.
    pub fn history(&self, actor: &Actor, env: &str) -> Result<Vec<HistoryEntry>> {
        self.authorize(actor, Action::Read)?;
        let env = self.environment(env)?;
        self.store
            .deployments(&env.name)?
            .into_iter()
            .map(|d| {
                Ok(HistoryEntry {
                    steps: self.store.deployment_events(d.id)?,
                    analyses: self.store.analyses(d.id)?,
                    deployment: d,
                })
            })
            .collect()
    }
}

/// What the control plane has done, counted: for the team server's
/// metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Deployments by environment and state (`live`, `failed`, ...).
    pub deployments: Vec<(String, String, i64)>,
    /// Judged canary steps by environment and verdict.
    pub verdicts: Vec<(String, String, i64)>,
}

impl Project {
    /// Deployments by outcome and canary verdicts, per environment.
    pub fn counts(&self, actor: &Actor) -> Result<Counts> {
        self.authorize(actor, Action::Read)?;
        Ok(Counts {
            deployments: self
                .store
                .deployment_counts()?
                .into_iter()
                .map(|(env, state, n)| (env, state.to_string(), n))
                .collect(),
            verdicts: self
                .store
                .verdict_counts()?
                .into_iter()
                .map(|(env, verdict, n)| (env, verdict.to_string(), n))
                .collect(),
        })
    }
}
