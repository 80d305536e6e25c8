//! Composing an environment: the base branch tip plus every card at or past
//! the environment's `cards_from` stage — or, for a hotfix environment,
//! production's live release plus the open hotfix cards — merged in a
//! deterministic order
//! (see `hifi_core::card::composition_order`) into `hifi/env/<env>`, then
//! recorded as a content-addressed release with every service version built.
//!
//! The order of effects is what makes this safe: merge and build first
//! (writing only git objects and scratch directories), then move the branch
//! with a compare-and-swap, then record the composition in the store. A
//! conflict or a failed build stops before the branch moves. Merge commits
//! are deterministic, so a composition interrupted between the branch move
//! and the record is simply recomputed, identically, next time.
//!
//! When an environment runs on Kubernetes, each image is also pushed once
//! to `[registry] url` (`<registry>/<service>`), and the registry's digest
//! is recorded: the cluster pulls `<registry>/<service>@<digest>`.

use std::path::Path;

use hifi_artifacts::Artifacts;
pub use hifi_artifacts::Built;
use hifi_core::card::{Card, composition_order};
use hifi_core::release::{MergedCard, Release, ReleaseId, ServiceVersion, composition_key};
use hifi_core::{Action, Environment, Origin, Service};
use hifi_git::{Composition, Ingredient, Oid};
use hifi_runtime::docker::{Engine, ImageId, build_image, image_exists, image_tag, push_image};
use hifi_store::releases::Recorded;
use hifi_store::{ArtifactKind, ConflictFlag};

use crate::error::{Error, Result};
use crate::project::{Actor, Project, now_ms};

/// What a composition produced.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The release (new or known).
    pub release: Release,
    /// Whether anything changed.
    pub outcome: Outcome,
    /// Each service's artifact: built now or reused.
    pub builds: Vec<(String, Built)>,
    /// Each service's image, for services with one while an environment
    /// runs containers: built now or reused.
    pub images: Vec<(String, Built)>,
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

impl Outcome {
    /// How reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::UpToDate => "up-to-date",
            Outcome::NewRelease => "new-release",
            Outcome::KnownRelease => "known-release",
        }
    }
}

/// The environment branch of `env`.
pub fn env_branch(env: &str) -> String {
    format!("hifi/env/{env}")
}

impl Project {
    /// Composes `env`; `progress` hears each slow step (merging, building).
    /// On a conflict, flags the card and leaves the branch as it was.
    pub fn compose(
        &mut self,
        actor: &Actor,
        env: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Composed> {
        self.authorize(actor, Action::Compose)?;
        let env = self.environment(env)?.clone();
        if let Origin::Promote(sources) = &env.origin {
            return Err(Error::NeverComposed {
                env: env.name.clone(),
                from: sources.join(" or "),
            });
        }
        let base = self.config.base.clone();
        if !self.repo.has_commits()? {
            return Err(Error::NoCommits { base });
        }

        let all_cards = self.all_cards()?;
        let cards = composition_order(&env, &self.config.workflow, &all_cards);
        let branch = env_branch(&env.name);
        let mut names: Vec<&str> = vec![&base, &branch];
        names.extend(cards.iter().map(|c| c.branch.as_str()));
        let resolved = self.repo.resolve_branches(&names)?;
        // What the cards are merged onto: the base branch's tip, or, for a
        // hotfix environment, the composition production runs — whose
        // cards the fix then carries too.
        let (base_commit, inherited) = match &env.origin {
            Origin::Hotfix(target) => self.live_composition(&env.name, target)?,
            _ => (
                resolved[0]
                    .clone()
                    .ok_or_else(|| Error::NoBase { base: base.clone() })?,
                Vec::new(),
            ),
        };
        let current = resolved[1].clone();
        let mut card_commits = Vec::with_capacity(cards.len());
        for (card, commit) in cards.iter().zip(&resolved[2..]) {
            let commit = commit.clone().ok_or_else(|| Error::NoBranch {
                card: card.id.clone(),
                branch: card.branch.clone(),
                env: env.name.clone(),
            })?;
            card_commits.push(commit);
        }

        let key_cards: Vec<(&str, &str)> = cards
            .iter()
            .zip(&card_commits)
            .map(|(c, o)| (c.id.as_str(), o.as_str()))
            .collect();
        let key = composition_key(base_commit.as_str(), &key_cards, &self.config.services);
        if let Some(up_to_date) = self.unchanged(&env, &key, current.as_ref())? {
            // A flag from a failed attempt since then no longer holds: the
            // environment is back to a state that composes.
            let audit = self.audit(actor);
            self.store.clear_conflicts(&audit, &env.name)?;
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
        let (commit, tree) = match self.repo.compose(&base_commit, &ingredients)? {
            Composition::Composed { commit, tree, .. } => (commit, tree),
            Composition::Conflict {
                index,
                files,
                blamed,
                ..
            } => {
                return Err(self.conflict(actor, &env, &cards, index, files, blamed));
            }
        };

        let paths: Vec<&str> = self
            .config
            .services
            .iter()
            .map(|s| s.path.as_str())
            .collect();
        let versions = self.repo.subtrees(&tree, &paths)?;
        let mut services = Vec::with_capacity(versions.len());
        for (service, version) in self.config.services.iter().zip(versions) {
            let version = version.ok_or_else(|| Error::NoServiceDirectory {
                service: service.name.clone(),
                path: service.path.clone(),
                env: env.name.clone(),
            })?;
            services.push(ServiceVersion {
                service: service.name.clone(),
                version: version.to_string(),
                // A serving setting, not content: never part of the recipe.
                recipe: Service {
                    request_timeout: None,
                    ..service.clone()
                },
                digest: None,
                image_id: None,
            });
        }

        let artifacts = Artifacts::new(&self.layout.artifacts());
        let mut builds = Vec::with_capacity(services.len());
        let mut images = Vec::new();
        let containers = self
            .config
            .environments
            .iter()
            .any(|e| e.runtime.runs_images());
        let recipes = self.config.services.clone();
        for (service, version) in recipes.iter().zip(services.iter_mut()) {
            if !artifacts.exists(service, &version.version) && service.build.is_some() {
                progress(&format!(
                    "building {} {}",
                    service.name,
                    &version.version[..12]
                ));
            }
            let built = artifacts
                .ensure(&self.repo, service, &version.version)
                .map_err(|e| match e {
                    e @ hifi_artifacts::Error::BuildFailed { .. } => {
                        Error::BuildFailed(e.to_string())
                    }
                    e @ hifi_artifacts::Error::EscapingLink { .. } => {
                        Error::UnsafeArtifact(e.to_string())
                    }
                    e => e.into(),
                })?;
            version.digest =
                Some(self.directory_digest(&artifacts, service, &version.version, &built)?);
            builds.push((service.name.clone(), built));
            if containers && service.image.is_some() {
                let (id, built) = self.image(service, &version.version, progress)?;
                if let Some(registry) = self.kubernetes_registry() {
                    self.push(service, &id, &registry, progress)?;
                }
                version.image_id = Some(id);
                images.push((service.name.clone(), built));
            }
        }

        let release = Release {
            id: ReleaseId::compute(tree.as_str(), &self.config.services),
            tree: tree.to_string(),
            commit: commit.to_string(),
            base_commit: base_commit.to_string(),
            cards: inherited
                .into_iter()
                .filter(|old| cards.iter().all(|card| card.id != old.id))
                .chain(
                    cards
                        .iter()
                        .zip(&card_commits)
                        .map(|(card, commit)| MergedCard {
                            id: card.id.clone(),
                            branch: card.branch.clone(),
                            commit: commit.to_string(),
                        }),
                )
                .collect(),
            services,
            composed_for: env.name.clone(),
            created_at: now_ms(),
        };
        let full_ref = format!("refs/heads/{branch}");
        if current.as_ref() != Some(&commit) {
            self.repo.update_ref(
                &full_ref,
                &commit,
                current.as_ref(),
                &format!("hifi compose {}", env.name),
            )?;
        }
        let audit = self.audit(actor);
        let recorded =
            self.store
                .record_composition(&audit, &env.name, &release, commit.as_str(), &key)?;
        // A known release keeps its first record (first commit, first cards list).
        let release = self.store.release(&release.id)?;
        Ok(Composed {
            release,
            outcome: match recorded {
                Recorded::NewRelease => Outcome::NewRelease,
                Recorded::KnownRelease => Outcome::KnownRelease,
            },
            builds,
            images,
        })
    }

    /// The last composition, if its inputs are the same, the branch still
    /// holds it and every artifact is still there.
    fn unchanged(
        &self,
        env: &Environment,
        key: &str,
        current: Option<&Oid>,
    ) -> Result<Option<Composed>> {
        let Some(last) = self.store.latest_composition(&env.name)? else {
            return Ok(None);
        };
        if last.inputs != key || current.map(Oid::as_str) != Some(last.commit.as_str()) {
            return Ok(None);
        }
        let release = self.store.release(&last.release)?;
        let artifacts = Artifacts::new(&self.layout.artifacts());
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
        let images = release
            .services
            .iter()
            .filter(|v| v.image_id.is_some())
            .map(|v| (v.service.clone(), Built::Reused))
            .collect();
        Ok(Some(Composed {
            release,
            outcome: Outcome::UpToDate,
            builds,
            images,
        }))
    }

    /// The composition commit of `target`'s live release, which the hotfix
    /// environment `env` is composed onto, and the cards already in it.
    fn live_composition(&self, env: &str, target: &str) -> Result<(Oid, Vec<MergedCard>)> {
        let live = self
            .store
            .live_release(target)?
            .ok_or_else(|| Error::NothingToFix {
                env: env.to_string(),
                target: target.to_string(),
            })?;
        let release = self.store.release(&live)?;
        let commit = release.commit.parse().map_err(|e: hifi_git::Error| {
            Error::Io(format!(
                "release {live} records commit `{}`, which is not a commit id: {e}",
                release.commit
            ))
        })?;
        Ok((commit, release.cards))
    }

    /// Flags the card that could not be merged and says what clashed.
    fn conflict(
        &mut self,
        actor: &Actor,
        env: &Environment,
        cards: &[&Card],
        index: usize,
        files: Vec<String>,
        blamed: Vec<usize>,
    ) -> Error {
        let card = cards[index];
        let with_cards: Vec<_> = blamed.iter().map(|&i| cards[i].id.clone()).collect();
        let with = if !with_cards.is_empty() {
            with_cards
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        } else if let Origin::Hotfix(target) = &env.origin {
            let live = self.store.live_release(target).ok().flatten();
            format!(
                "{target}'s live release{}",
                live.map(|l| format!(" {l}")).unwrap_or_default()
            )
        } else {
            format!("the base branch {}", self.config.base)
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
            card: card.id.clone(),
            with_cards,
            files,
            at: now_ms(),
        };
        let audit = self.audit(actor);
        if let Err(e) = self.store.record_conflict(&audit, &flag, &message) {
            return e.into();
        }
        Error::Conflict {
            message,
            branch: card.branch.clone(),
            card: card.id.clone(),
            env: env.name.clone(),
        }
    }
}

impl Project {
    /// `[registry] url` when an environment runs on Kubernetes: where its
    /// images must be for the cluster to pull them.
    fn kubernetes_registry(&self) -> Option<String> {
        let kubernetes = self
            .config
            .environments
            .iter()
            .any(|e| e.runtime == hifi_core::RuntimeKind::Kubernetes);
        kubernetes
            .then(|| self.config.registry.as_ref().map(|r| r.url.clone()))
            .flatten()
    }

    /// Pushes image `id` of `service` to `<registry>/<service>` unless it
    /// was pushed there before, and records the registry's digest: the
    /// cluster runs `<registry>/<service>@<digest>`, exactly these bytes.
    fn push(
        &mut self,
        service: &Service,
        id: &str,
        registry: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<String> {
        let repository = hifi_runtime::kubernetes::target::repository(registry, &service.name);
        let key = hifi_store::pushed_key(&repository, id);
        if let Some(digest) =
            self.store
                .artifact_digest(&service.name, ArtifactKind::Pushed, &key)?
        {
            return Ok(digest);
        }
        let parsed = ImageId::parse(id)
            .ok_or_else(|| Error::BuildFailed(format!("`{id}` is not an image id")))?;
        progress(&format!(
            "pushing image of {} to {repository}",
            service.name
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("cannot start an async runtime for the push: {e}")))?;
        let log = self.layout.artifacts().join(&service.name).join("push.log");
        let engine = Engine::from_env();
        let digest = runtime
            .block_on(push_image(&engine, &parsed, &repository, &log))
            .map_err(|e| Error::BuildFailed(e.to_string()))?;
        let now = self.now();
        self.store
            .record_artifact(&service.name, ArtifactKind::Pushed, &key, &digest, now)?;
        Ok(digest)
    }

    /// The digest of a service version's directory artifact as it was when
    /// built: recorded now when it was just built, read back when reused
    /// (taken now, once, for an artifact built before digests were kept).
    fn directory_digest(
        &mut self,
        artifacts: &Artifacts,
        service: &Service,
        version: &str,
        built: &Built,
    ) -> Result<String> {
        let key = artifacts.key(service, version);
        let digest = match built {
            Built::Built(_, digest) => digest.clone(),
            Built::Reused => {
                if let Some(digest) =
                    self.store
                        .artifact_digest(&service.name, ArtifactKind::Directory, &key)?
                {
                    return Ok(digest);
                }
                hifi_artifacts::digest(&artifacts.dir(service, version))?
            }
        };
        let now = self.now();
        self.store
            .record_artifact(&service.name, ArtifactKind::Directory, &key, &digest, now)?;
        Ok(digest)
    }

    /// The image of a service version: the recorded one if the engine still
    /// has it, else built now from an export of exactly that version.
    fn image(
        &mut self,
        service: &Service,
        version: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(String, Built)> {
        let dockerfile = service.image.clone().unwrap_or_default();
        let tag = image_tag(&self.config.name, &service.name, version);
        let key = format!("{tag} {dockerfile}");
        let engine = Engine::from_env();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::Io(format!(
                    "cannot start an async runtime for the image build: {e}"
                ))
            })?;
        let failed = |e: hifi_runtime::Error| Error::BuildFailed(e.to_string());
        if let Some(id) = self
            .store
            .artifact_digest(&service.name, ArtifactKind::Image, &key)?
            && let Some(parsed) = ImageId::parse(&id)
            && runtime
                .block_on(image_exists(&engine, &parsed))
                .map_err(failed)?
        {
            return Ok((id, Built::Reused));
        }
        progress(&format!("building image {tag}"));
        let started = std::time::Instant::now();
        let context = tempfile::Builder::new()
            .prefix(".image-")
            .tempdir_in(self.layout.artifacts())
            .or_else(|_| tempfile::tempdir())
            .map_err(|e| Error::Io(format!("cannot make a build context: {e}")))?;
        let tree: Oid = version.parse()?;
        self.repo.export(&tree, "", context.path())?;
        let log = self
            .layout
            .artifacts()
            .join(&service.name)
            .join(format!("{version}.image.log"));
        let id = runtime
            .block_on(build_image(
                &engine,
                context.path(),
                Path::new(&dockerfile),
                &tag,
                &log,
            ))
            .map_err(failed)?;
        let id = id.to_string();
        let now = self.now();
        self.store
            .record_artifact(&service.name, ArtifactKind::Image, &key, &id, now)?;
        Ok((id.clone(), Built::Built(started.elapsed().as_millis(), id)))
    }
}
