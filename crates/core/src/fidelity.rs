//! The fidelity gate: may release R go live in environment E?
//!
//! - A composed environment (`cards_from`) accepts the releases composed for
//!   it: its content is defined by its cards, so a release from elsewhere
//!   would be a state nobody asked for there.
//! - A gated environment (`promote_from = "A"`, or a list) accepts only a
//!   release that was verified in one of them — live and healthy there for
//!   its soak time.
//! - A rejected release goes live nowhere.
//! - Either kind accepts it only with the environment's required approvals,
//!   counted per release and per person: the same person signing off twice
//!   counts once. With `four_eyes`, the sign-off of the person deploying it
//!   (the promoter) never counts, as code review never counts the author's.
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
    /// Who deploys it there (the actor of the deployment asked for or in
    /// progress), whose own sign-off does not count under four-eyes.
    pub promoter: Option<String>,
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
        /// Under four-eyes, the promoter whose own sign-off was not counted.
        own_excluded: Option<String>,
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
                own_excluded,
            } => {
                write!(
                    f,
                    "release {release} has {have} of the {need} approval(s) {env} requires"
                )?;
                if let Some(own) = own_excluded {
                    write!(
                        f,
                        " ({env} is four-eyes: {own}'s own sign-off does not count for {own}'s deployment)"
                    )?;
                }
                write!(
                    f,
                    "; sign it off with `hifi approve {env} --release {release}`"
                )
            }
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
    let counted = count_approvals(env, &facts.approvers, facts.promoter.as_deref());
    if counted.have < env.approvals as usize {
        return Err(Refusal::MissingApprovals {
            env: env.name.clone(),
            release: release.clone(),
            have: counted.have,
            need: env.approvals,
            own_excluded: counted.own_excluded,
        });
    }
    Ok(())
}

/// The sign-offs that count for a release going to an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// How many count.
    pub have: usize,
    /// Under four-eyes, the promoter whose own sign-off was left out.
    pub own_excluded: Option<String>,
}

/// Counts `approvers` for `env`: each person once (names compare without
/// case or surrounding blanks, so `Ann` and `ann` are one person); under
/// four-eyes, never the `promoter`.
pub fn count_approvals(env: &Environment, approvers: &[String], promoter: Option<&str>) -> Counted {
    let person = |name: &str| name.trim().to_lowercase();
    let mut people: Vec<String> = approvers.iter().map(|a| person(a)).collect();
    people.sort();
    people.dedup();
    let mut own_excluded = None;
    if env.four_eyes
        && let Some(promoter) = promoter
    {
        let before = people.len();
        people.retain(|p| *p != person(promoter));
        if people.len() < before {
            own_excluded = Some(promoter.trim().to_string());
        }
    }
    Counted {
        have: people.len(),
        own_excluded,
    }
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
            promoter: None,
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
            approvers: vec!["ann".into(), "Ann ".into()],
            rejected: None,
            promoter: Some("ann".into()),
        };
        let refusal = check(prod, &release(), &facts).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::MissingApprovals {
                have: 1,
                need: 2,
                own_excluded: None,
                ..
            }
        ));
        facts.approvers.push("bob".into());
        assert_eq!(check(prod, &release(), &facts), Ok(()));
    }

    fn four_eyes() -> Environment {
        let mut prod = config().environment("prod").unwrap().clone();
        prod.four_eyes = true;
        prod.approvals = 1;
        prod
    }

    #[test]
    fn four_eyes_never_counts_the_promoters_own_sign_off() {
        let prod = four_eyes();
        let mut facts = Facts {
            verified_in: vec!["prep".into()],
            approvers: vec!["ann".into()],
            promoter: Some("Ann".into()),
            ..Facts::default()
        };
        let refusal = check(&prod, &release(), &facts).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::MissingApprovals { have: 0, need: 1, own_excluded: Some(ref own), .. } if own == "Ann"
        ));
        assert!(
            refusal
                .to_string()
                .contains("four-eyes: Ann's own sign-off does not count"),
            "{refusal}"
        );
        // Someone else's sign-off counts; so does ann's when bob promotes.
        facts.approvers.push("bob".into());
        assert_eq!(check(&prod, &release(), &facts), Ok(()));
        facts.approvers = vec!["ann".into()];
        facts.promoter = Some("bob".into());
        assert_eq!(check(&prod, &release(), &facts), Ok(()));
    }

    #[test]
    fn four_eyes_counts_distinct_people_and_without_it_the_promoter_counts() {
        let mut prod = four_eyes();
        prod.approvals = 2;
        let approvers = vec!["bob".into(), "bob".into(), "BOB".into(), "ann".into()];
        assert_eq!(count_approvals(&prod, &approvers, Some("ann")).have, 1);
        assert_eq!(count_approvals(&prod, &approvers, Some("cy")).have, 2);
        prod.four_eyes = false;
        let counted = count_approvals(&prod, &approvers, Some("ann"));
        assert_eq!(
            counted,
            Counted {
                have: 2,
                own_excluded: None
            }
        );
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
