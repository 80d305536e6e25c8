//! Composing an environment: the base branch tip plus every card at or past
//! the environment's `cards_from` stage, merged in a deterministic order
//! (see `hifi_core::card::composition_order`) into `hifi/env/<env>`, then
//! recorded as a content-addressed release with every service version built.
//!
//! The order of effects is what makes this safe: merge and build first
//! (writing only git objects and scratch directories), then move the branch
//! with a compare-and-swap, then record the composition in the store. A
//! conflict or a failed build stops before the branch moves. Merge commits
//! are deterministic, so a composition interrupted between the branch move
//! and the record is simply recomputed, identically, next time.

use hifi_core::card::{Card, composition_order};
use hifi_core::release::{MergedCard, Release, ReleaseId, ServiceVersion, composition_key};
use hifi_core::{Environment, Origin};
use hifi_git::{Composition, Ingredient, Oid};
use hifi_store::ConflictFlag;
use hifi_store::releases::Recorded;

use crate::error::{Failure, Result};
use crate::project::{Project, now_ms};
use hifi_artifacts::{Artifacts, Built};

/// What a composition produced.
pub struct Composed {
    /// The release (new or known).
    pub release: Release,
    /// Whether anything changed.
    pub outcome: Outcome,
    /// Each service's artifact: built now or reused.
    pub builds: Vec<(String, Built)>,
}

/// Whether composing changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Same inputs as the last composition: nothing was written.
    UpToDate,
    /// The environment branch now holds a release never seen before.
    NewRelease,
    /// The environment branch moved to a release already known (same content).
    KnownRelease,
}

/// The environment branch of `env`.
pub fn env_branch(env: &str) -> String {
    format!("hifi/env/{env}")
}

/// Composes `env_name`. On a conflict, flags the card and leaves the branch.
pub fn compose(
    project: &mut Project,
    env_name: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Composed> {
    let env = project
        .config
        .environment(env_name)
        .map_err(Failure::refused)?
        .clone();
    if let Origin::Promote(source) = &env.origin {
        return Err(Failure::refused(format!(
            "{} is never composed: it promotes from {source} and takes only releases verified there",
            env.name
        ))
        .hint(format!("compose {source} instead, and promote its verified release with `hifi promote {source} {}`", env.name)));
    }
    if !project.repo.has_commits()? {
        return Err(
            Failure::refused("the repository has no commits yet").hint(format!(
                "commit to the base branch {} first",
                project.config.base
            )),
        );
    }

    let all_cards = project.cards()?;
    let cards = composition_order(&env, &all_cards);
    let base = project.config.base.clone();
    let branch = env_branch(&env.name);
    let mut names: Vec<&str> = vec![&base, &branch];
    names.extend(cards.iter().map(|c| c.branch.as_str()));
    let resolved = project.repo.resolve_branches(&names)?;
    let base_commit = resolved[0].clone().ok_or_else(|| {
        Failure::refused(format!("the base branch {base} does not exist"))
            .hint("create it, or set `base` under [project] in hifi.toml")
    })?;
    let current = resolved[1].clone();
    let mut card_commits = Vec::with_capacity(cards.len());
    for (card, commit) in cards.iter().zip(&resolved[2..]) {
        let commit = commit.clone().ok_or_else(|| {
            Failure::refused(format!("card {}'s branch {} does not exist", card.id, card.branch)).hint(format!(
                "push the branch, fix it with `hifi card rm {0}` and `hifi card add {0} --branch ...`, or move the card out of {1}",
                card.id, env.name
            ))
        })?;
        card_commits.push(commit);
    }

    let key_cards: Vec<(&str, &str)> = cards
        .iter()
        .zip(&card_commits)
        .map(|(c, o)| (c.id.as_str(), o.as_str()))
        .collect();
    let key = composition_key(base_commit.as_str(), &key_cards, &project.config.services);
    if let Some(up_to_date) = unchanged(project, &env, &key, current.as_ref())? {
        // A flag from a failed attempt since then no longer holds: the
        // environment is back to a state that composes.
        project.store.clear_conflicts(&project.audit(), &env.name)?;
        return Ok(up_to_date);
    }

    progress(&format!(
        "merging {} card(s) onto {base} {}",
        cards.len(),
        base_commit.short()
    ));
    let ingredients: Vec<Ingredient> = cards
        .iter()
        .zip(&card_commits)
        .map(|(card, commit)| Ingredient {
            label: format!("card {} ({}) into {}", card.id, card.branch, env.name),
            commit: commit.clone(),
        })
        .collect();
    let (commit, tree) = match project.repo.compose(&base_commit, &ingredients)? {
        Composition::Composed { commit, tree, .. } => (commit, tree),
        Composition::Conflict {
            index,
            files,
            blamed,
            ..
        } => {
            return Err(conflict(project, &env, &cards, index, files, blamed));
        }
    };

    let paths: Vec<&str> = project
        .config
        .services
        .iter()
        .map(|s| s.path.as_str())
        .collect();
    let versions = project.repo.subtrees(&tree, &paths)?;
    let mut services = Vec::with_capacity(versions.len());
    for (service, version) in project.config.services.iter().zip(versions) {
        let version = version.ok_or_else(|| {
            Failure::refused(format!(
                "service {}'s directory `{}` does not exist in {}'s composition",
                service.name, service.path, env.name
            ))
            .hint("fix `path` in hifi.toml, or make sure the base branch or a card adds that directory")
        })?;
        services.push(ServiceVersion {
            service: service.name.clone(),
            version: version.to_string(),
            recipe: service.clone(),
        });
    }

    let artifacts = Artifacts::new(&project.state_dir());
    let mut builds = Vec::with_capacity(services.len());
    for (service, version) in project.config.services.iter().zip(&services) {
        if !artifacts.exists(service, &version.version) && service.build.is_some() {
            progress(&format!(
                "building {} {}",
                service.name,
                &version.version[..12]
            ));
        }
        let built = artifacts
            .ensure(&project.repo, service, &version.version)
            .map_err(|e| match e {
                e @ hifi_artifacts::Error::BuildFailed { .. } => Failure::refused(e.to_string())
                    .hint("fix the build on the card's branch (or the base branch) and compose again; nothing was changed"),
                e => Failure::refused(e.to_string()),
            })?;
        builds.push((service.name.clone(), built));
    }

    let release = Release {
        id: ReleaseId::compute(tree.as_str(), &project.config.services),
        tree: tree.to_string(),
        commit: commit.to_string(),
        base_commit: base_commit.to_string(),
        cards: cards
            .iter()
            .zip(&card_commits)
            .map(|(card, commit)| MergedCard {
                id: card.id.clone(),
                branch: card.branch.clone(),
                commit: commit.to_string(),
            })
            .collect(),
        services,
        composed_for: env.name.clone(),
        created_at: now_ms(),
    };
    let full_ref = format!("refs/heads/{branch}");
    if current.as_ref() != Some(&commit) {
        project.repo.update_ref(
            &full_ref,
            &commit,
            current.as_ref(),
            &format!("hifi compose {}", env.name),
        )?;
    }
    let recorded = project.store.record_composition(
        &project.audit(),
        &env.name,
        &release,
        commit.as_str(),
        &key,
    )?;
    // A known release keeps its first record (first commit, first cards list).
    let release = project.store.release(&release.id)?;
    Ok(Composed {
        release,
        outcome: match recorded {
            Recorded::NewRelease => Outcome::NewRelease,
            Recorded::KnownRelease => Outcome::KnownRelease,
        },
        builds,
    })
}

/// The last composition, if its inputs are the same, the branch still holds
/// it and every artifact is still there.
fn unchanged(
    project: &Project,
    env: &Environment,
    key: &str,
    current: Option<&Oid>,
) -> Result<Option<Composed>> {
    let Some(last) = project.store.latest_composition(&env.name)? else {
        return Ok(None);
    };
    if last.inputs != key || current.map(Oid::as_str) != Some(last.commit.as_str()) {
        return Ok(None);
    }
    let release = project
        .store
        .release(&ReleaseId::from_stored(last.release))?;
    let artifacts = Artifacts::new(&project.state_dir());
    if !release
        .services
        .iter()
        .all(|v| artifacts.exists(&v.recipe, &v.version))
    {
        return Ok(None);
    }
    let builds = release
        .services
        .iter()
        .map(|v| (v.service.clone(), Built::Reused))
        .collect();
    Ok(Some(Composed {
        release,
        outcome: Outcome::UpToDate,
        builds,
    }))
}

fn conflict(
    project: &mut Project,
    env: &Environment,
    cards: &[&Card],
    index: usize,
    files: Vec<String>,
    blamed: Vec<usize>,
) -> Failure {
    let card = cards[index];
    let with_cards: Vec<String> = blamed.iter().map(|&i| cards[i].id.to_string()).collect();
    let with = if with_cards.is_empty() {
        format!("the base branch {}", project.config.base)
    } else {
        with_cards.join(", ")
    };
    let message = format!(
        "cannot compose {}: card {} ({}) conflicts with {with} in {}; {} was left unchanged",
        env.name,
        card.id,
        card.branch,
        files.join(", "),
        env_branch(&env.name)
    );
    let flag = ConflictFlag {
        env: env.name.clone(),
        card: card.id.to_string(),
        with_cards,
        files,
        at: now_ms(),
    };
    if let Err(e) = project
        .store
        .record_conflict(&project.audit(), &flag, &message)
    {
        return e.into();
    }
    Failure::refused(message).hint(format!(
        "resolve the conflict on {} (merge the other branch into it and fix the files), or move {} back out of {}",
        card.branch, card.id, env.name
    ))
}
