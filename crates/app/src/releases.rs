//! Releases: the list, one release's fidelity chain (how it was composed,
//! where it was verified, who approved it, where it runs), signing one off,
//! and the diff of two environments.

use hifi_core::diff::{EnvDiff, Side, diff};
use hifi_core::{Action, Origin, Release, ReleaseId, fidelity};
use hifi_store::{Approval, Composition, Deployment, Rejection};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Actor, Project};

/// A release with where it came from and where it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseSummary {
    /// The release.
    #[serde(flatten)]
    pub release: Release,
    /// The environments it was composed for.
    pub composed_in: Vec<String>,
    /// The environments where it is live.
    pub live_in: Vec<String>,
    /// Why it may never go live again, if it was rejected.
    pub rejected: Option<Rejection>,
}

/// Where and when a release was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    /// The environment.
    pub env: String,
    /// When (unix ms).
    pub at: i64,
}

/// A release's fidelity chain: everything that vouches for what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseDetail {
    /// The release, with where it was composed and where it is live.
    #[serde(flatten)]
    pub summary: ReleaseSummary,
    /// Every composition that produced it.
    pub compositions: Vec<Composition>,
    /// Where it was verified, oldest first.
    pub verified: Vec<Verification>,
    /// Every sign-off, for any environment.
    pub approvals: Vec<Approval>,
    /// Every deployment of it.
    pub deployments: Vec<Deployment>,
}

/// A sign-off just recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approved {
    /// The environment it allows the release into.
    pub env: String,
    /// The release.
    pub release: ReleaseId,
    /// Who signed off.
    pub approver: String,
    /// False when this person had already signed off.
    pub new: bool,
    /// Sign-offs the release now has for the environment.
    pub approvals: usize,
    /// Sign-offs the environment requires.
    pub required: u32,
    /// Whether the environment is four-eyes: the sign-off of whoever
    /// deploys the release there will not count.
    pub four_eyes: bool,
}

/// A release just rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectedRelease {
    /// The release.
    pub release: ReleaseId,
    /// Why.
    pub reason: String,
    /// False when it had been rejected before (the first reason stands).
    pub new: bool,
    /// Where it is still live: it stays until replaced.
    pub live_in: Vec<String>,
}

/// What an environment runs (its live release) or would run next (its
/// latest composition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Current {
    /// Live there.
    #[serde(rename = "live")]
    Live,
    /// Composed, not deployed.
    #[serde(rename = "composed, not deployed")]
    Composed,
}

impl Current {
    /// How reports say it.
    pub fn describe(self) -> &'static str {
        match self {
            Current::Live => "live",
            Current::Composed => "composed, not deployed",
        }
    }
}

/// The difference between two environments: the diff's own fields, then
/// what each side's release is to its environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffView {
    /// Cards, service versions and vars that differ.
    #[serde(flatten)]
    pub diff: EnvDiff,
    /// What the left release is to its environment.
    pub state_a: Option<Current>,
    /// What the right release is to its environment.
    pub state_b: Option<Current>,
}

impl Project {
    fn summary(&self, release: Release) -> Result<ReleaseSummary> {
        let composed_in = self.store.composed_for(&release.id)?;
        let mut live_in = Vec::new();
        for env in &self.config.environments {
            if self.store.live_release(&env.name)?.as_ref() == Some(&release.id) {
                live_in.push(env.name.clone());
            }
        }
        Ok(ReleaseSummary {
            rejected: self.store.rejection(&release.id)?,
            release,
            composed_in,
            live_in,
        })
    }

    /// Every release, newest first.
    pub fn releases(&self, actor: &Actor) -> Result<Vec<ReleaseSummary>> {
        self.authorize(actor, Action::Read)?;
        self.store
            .releases()?
            .into_iter()
            .map(|r| self.summary(r))
            .collect()
    }

    /// One release (by id or unique prefix) with its fidelity chain.
    pub fn release(&self, actor: &Actor, id: &str) -> Result<ReleaseDetail> {
        self.authorize(actor, Action::Read)?;
        let id = self.resolve_release(id)?;
        let release = self.store.release(&id)?;
        Ok(ReleaseDetail {
            summary: self.summary(release)?,
            compositions: self.store.compositions_of(&id)?,
            verified: self
                .store
                .verifications(&id)?
                .into_iter()
                .map(|(env, at)| Verification { env, at })
                .collect(),
            approvals: self.store.release_approvals(&id)?,
            deployments: self.store.release_deployments(&id)?,
        })
    }

    /// The release an environment runs or would run next.
    fn current(&self, env: &str) -> Result<Option<(Release, Current)>> {
        if let Some(id) = self.store.live_release(env)? {
            return Ok(Some((self.store.release(&id)?, Current::Live)));
        }
        match self.store.latest_composition(env)? {
            Some(c) => Ok(Some((self.store.release(&c.release)?, Current::Composed))),
            None => Ok(None),
        }
    }

    /// Cards, service versions and vars that differ between two environments.
    pub fn diff(&self, actor: &Actor, a: &str, b: &str) -> Result<DiffView> {
        self.authorize(actor, Action::Read)?;
        let env_a = self.environment(a)?;
        let env_b = self.environment(b)?;
        let cur_a = self.current(a)?;
        let cur_b = self.current(b)?;
        let d = diff(
            Side {
                env: a,
                release: cur_a.as_ref().map(|(r, _)| r),
                vars: &env_a.vars,
            },
            Side {
                env: b,
                release: cur_b.as_ref().map(|(r, _)| r),
                vars: &env_b.vars,
            },
        );
        Ok(DiffView {
            diff: d,
            state_a: cur_a.map(|(_, s)| s),
            state_b: cur_b.map(|(_, s)| s),
        })
    }

    /// Rejects a release: it never goes live again anywhere; where it is
    /// live, it stays until it is replaced.
    pub fn reject(&mut self, actor: &Actor, id: &str, reason: &str) -> Result<RejectedRelease> {
        self.authorize(actor, Action::Reject)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::BadInput(
                "a rejection needs a reason: --reason \"...\"".into(),
            ));
        }
        let release = self.resolve_release(id)?;
        let audit = self.audit(actor);
        let new = self.store.reject(&audit, &release, reason)?;
        let summary = self.summary(self.store.release(&release)?)?;
        Ok(RejectedRelease {
            reason: summary
                .rejected
                .map(|r| r.reason)
                .unwrap_or_else(|| reason.to_string()),
            release,
            new,
            live_in: summary.live_in,
        })
    }

    /// Signs off a release for an environment (default: the one that would
    /// go there next).
    pub fn approve(&mut self, actor: &Actor, env: &str, release: Option<&str>) -> Result<Approved> {
        self.authorize(actor, Action::Approve)?;
        let environment = self.environment(env)?.clone();
        let id = match release {
            Some(prefix) => self.resolve_release(prefix)?,
            None => self.next_release(&environment.name, &environment.origin)?,
        };
        let audit = self.audit(actor);
        let new = self.store.approve(&audit, &environment.name, &id)?;
        let approvers: Vec<String> = self
            .store
            .approvals(&environment.name, &id)?
            .into_iter()
            .map(|a| a.actor)
            .collect();
        let approvals = fidelity::count_approvals(&environment, &approvers, None).have;
        Ok(Approved {
            env: environment.name,
            release: id,
            approver: audit.actor,
            new,
            approvals,
            required: environment.approvals,
            four_eyes: environment.four_eyes,
        })
    }

    /// The release that would go to an environment next: for a gated one,
    /// its source's live release; for a composed one, its latest composition.
    pub(crate) fn next_release(&self, env: &str, origin: &Origin) -> Result<ReleaseId> {
        match origin {
            Origin::Promote(sources) => {
                // The source that went live most recently with a release
                // this environment does not run yet.
                let here = self.store.live_release(env)?;
                let mut next: Option<(i64, ReleaseId)> = None;
                for source in sources {
                    if let Some(live) = self.store.live_release(source)?
                        && Some(&live) != here.as_ref()
                    {
                        let since = self.store.routing(source)?.live_since.unwrap_or(0);
                        if next.as_ref().is_none_or(|(at, _)| since > *at) {
                            next = Some((since, live));
                        }
                    }
                }
                match (next, here) {
                    (Some((_, release)), _) => Ok(release),
                    (None, Some(live)) => Ok(live),
                    (None, None) => Err(Error::NothingToApprove {
                        env: env.to_string(),
                        why: format!("{} has no live release yet", sources.join(" or ")),
                        hint: "name one with --release ID (see `hifi releases`)".into(),
                    }),
                }
            }
            Origin::Cards(_) | Origin::Hotfix(_) => self
                .store
                .latest_composition(env)?
                .map(|c| c.release)
                .ok_or_else(|| Error::NothingToApprove {
                    env: env.to_string(),
                    why: "it was never composed".into(),
                    hint: format!("compose it first: hifi compose {env}"),
                }),
        }
    }
}
