//! The fidelity gate: may release R go live in environment E?
//!
//! - A composed environment (`cards_from`) accepts the releases composed for
//!   it: its content is defined by its cards, so a release from elsewhere
//!   would be a state nobody asked for there.
//! - A gated environment (`promote_from = "A"`, or a list) accepts only a
//!   release that was verified in one of them — live and healthy there for
//!   its soak time.
//! - A rejected release goes live nowhere.
//! - Either kind accepts it only with the environment's required approvals.
//!
//! The rule is a pure function of [`Facts`] read from the ledger, so the
//! command that refuses a promotion and the controller that checks again
//! before moving traffic cannot disagree.

use std::fmt;

use crate::config::Environment;
use crate::release::ReleaseId;

/// What the ledger knows about one release, as the gate needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Environments the release was composed for.
    pub composed_for: Vec<String>,
    /// Environments where the release has been verified.
    pub verified_in: Vec<String>,
    /// Distinct people who approved the release for the target environment.
    pub approvers: Vec<String>,
    /// Why the release was rejected, if it was: it never goes live again.
    pub rejected: Option<String>,
}

/// Why a release may not go live in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The release was rejected.
    Rejected {
        /// Target environment.
        env: String,
        /// The release offered.
        release: ReleaseId,
        /// Why it was rejected.
        reason: String,
    },
    /// A composed environment was offered a release composed elsewhere.
    NotComposedHere {
        /// Target environment.
        env: String,
        /// The release offered.
        release: ReleaseId,
    },
    /// The release was not verified in the environment this one promotes from.
    NotVerified {
        /// Target environment.
        env: String,
        /// The environment it must be verified in first.
        source: String,
        /// The release offered.
        release: ReleaseId,
    },
    /// Not enough sign-offs yet.
    MissingApprovals {
        /// Target environment.
        env: String,
        /// The release offered.
        release: ReleaseId,
        /// Approvals recorded.
        have: usize,
        /// Approvals required.
        need: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Rejected {
                env,
                release,
                reason,
            } => write!(
                f,
                "release {release} was rejected ({reason}) and never goes live again, in {env} or anywhere"
            ),
            Refusal::NotComposedHere { env, release } => write!(
                f,
                "release {release} was not composed for {env}; {env} runs only its own compositions (run `hifi compose {env}`)"
            ),
            Refusal::NotVerified {
                env,
                source,
                release,
            } => write!(
                f,
                "release {release} is not verified in {source}, and {env} only takes releases verified there; deploy it to {source} and let it run healthy as the active release for {source}'s soak time"
            ),
            Refusal::MissingApprovals {
                env,
                release,
                have,
                need,
            } => write!(
                f,
                "release {release} has {have} of the {need} approval(s) {env} requires; sign it off with `hifi approve {env} --release {release}`"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Decides whether `release` may go live in `env`, given what the ledger knows.
pub fn check(env: &Environment, release: &ReleaseId, facts: &Facts) -> Result<(), Refusal> {
    if let Some(reason) = &facts.rejected {
        return Err(Refusal::Rejected {
            env: env.name.clone(),
            release: release.clone(),
            reason: reason.clone(),
        });
    }
    let sources = env.promote_from();
    if sources.is_empty() {
        if !facts.composed_for.iter().any(|e| e == &env.name) {
            return Err(Refusal::NotComposedHere {
                env: env.name.clone(),
                release: release.clone(),
            });
        }
    } else if !facts
        .verified_in
        .iter()
        .any(|e| sources.iter().any(|s| s == e))
    {
        return Err(Refusal::NotVerified {
            env: env.name.clone(),
            source: sources.join(" or "),
            release: release.clone(),
        });
    }
    let mut approvers: Vec<&String> = facts.approvers.iter().collect();
    approvers.sort();
    approvers.dedup();
    if approvers.len() < env.approvals as usize {
        return Err(Refusal::MissingApprovals {
            env: env.name.clone(),
            release: release.clone(),
            have: approvers.len(),
            need: env.approvals,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config::parse(
            r#"
[project]
name = "shop"
[[environment]]
name = "prep"
port = 8400
cards_from = "Ready for Production"
[[environment]]
name = "prod"
port = 8500
promote_from = "prep"
approvals = 2
"#,
        )
        .unwrap()
    }

    fn release() -> ReleaseId {
        ReleaseId::compute("tree", &[])
    }

    #[test]
    fn promote_refuses_release_not_verified_in_source() {
        let config = config();
        let prod = config.environment("prod").unwrap();
        let facts = Facts {
            composed_for: vec!["prep".into()],
            verified_in: vec![],
            approvers: vec!["ann".into(), "bob".into()],
            rejected: None,
        };
        let refusal = check(prod, &release(), &facts).unwrap_err();
        assert!(matches!(refusal, Refusal::NotVerified { ref source, .. } if source == "prep"));
        assert!(refusal.to_string().contains("not verified in prep"));
    }

    #[test]
    fn approvals_count_distinct_people() {
        let config = config();
        let prod = config.environment("prod").unwrap();
        let mut facts = Facts {
            composed_for: vec![],
            verified_in: vec!["prep".into()],
            approvers: vec!["ann".into(), "ann".into()],
            rejected: None,
        };
        let refusal = check(prod, &release(), &facts).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::MissingApprovals {
                have: 1,
                need: 2,
                ..
            }
        ));
        facts.approvers.push("bob".into());
        assert_eq!(check(prod, &release(), &facts), Ok(()));
    }

    #[test]
    fn a_rejected_release_goes_live_nowhere_and_says_why() {
        let config = config();
        let prep = config.environment("prep").unwrap();
        let facts = Facts {
            composed_for: vec!["prep".into()],
            rejected: Some("wrong prices in the catalog".into()),
            ..Facts::default()
        };
        let refusal = check(prep, &release(), &facts).unwrap_err();
        assert!(matches!(refusal, Refusal::Rejected { .. }));
        assert!(refusal.to_string().contains("wrong prices in the catalog"));
    }

    #[test]
    fn composed_environment_takes_only_its_compositions() {
        let config = config();
        let prep = config.environment("prep").unwrap();
        let elsewhere = Facts {
            composed_for: vec!["dev".into()],
            ..Facts::default()
        };
        assert!(matches!(
            check(prep, &release(), &elsewhere),
            Err(Refusal::NotComposedHere { .. })
        ));
        let here = Facts {
            composed_for: vec!["prep".into()],
            ..Facts::default()
        };
        assert_eq!(check(prep, &release(), &here), Ok(()));
    }
}
