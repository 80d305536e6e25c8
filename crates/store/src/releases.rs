//! Releases and compositions. A release row is written once and never
//! changed; each composition of an environment appends a row pointing at
//! the release it produced, with the key of its inputs.

use hifi_core::Service;
use hifi_core::card::CardId;
use hifi_core::event::EventKind;
use hifi_core::release::{MergedCard, Release, ReleaseId, ServiceVersion};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::events::{Subject, record};
use crate::{Audit, Error, Result, Store};

/// One composition of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Composition {
    /// Position in the log of compositions.
    pub seq: i64,
    /// The environment.
    pub env: String,
    /// The release it produced.
    pub release: ReleaseId,
    /// The commit written to the environment branch.
    pub commit: String,
    /// Key of the inputs (base and card commits, recipes).
    pub inputs: String,
    /// When (unix ms).
    pub at: i64,
    /// Who.
    pub actor: String,
}

/// What [`Store::record_composition`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A release seen for the first time.
    NewRelease,
    /// The content matched an existing release.
    KnownRelease,
}

impl Store {
    /// Records a composition of `env` and, if its content is new, the release.
    pub fn record_composition(
        &mut self,
        audit: &Audit,
        env: &str,
        release: &Release,
        commit: &str,
        inputs: &str,
    ) -> Result<Recorded> {
        let id = &release.id;
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO releases (id, tree, commit_id, base_commit, composed_for, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                params![id, release.tree, release.commit, release.base_commit, release.composed_for, release.created_at],
            )?;
            if inserted == 1 {
                for (position, card) in release.cards.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO release_cards (release_id, position, card, branch, commit_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, position as i64, card.id.as_str(), card.branch, card.commit],
                    )?;
                }
                for service in &release.services {
                    let r = &service.recipe;
                    tx.execute(
                        "INSERT INTO release_services (release_id, service, version, path, build, run, health, route,
                             image, digest, image_id, protocol)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                        params![id, service.service, service.version, r.path, r.build, r.run, r.health, r.route,
                            r.image, service.digest, service.image_id, r.protocol],
                    )?;
                }
            }
            tx.execute(
                "INSERT INTO compositions (env, release_id, commit_id, inputs, at, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![env, id, commit, inputs, audit.at, audit.actor],
            )?;
            tx.execute("DELETE FROM conflicts WHERE env = ?1", [env])?;
            let cards = release.cards.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ");
            let message = format!(
                "composed {env}: release {} ({}){}",
                release.id,
                if cards.is_empty() { "no cards".to_string() } else { cards },
                if inserted == 1 { "" } else { ", same content as before" }
            );
            let subject = Subject::env(env).with_release(&release.id);
            record(tx, audit, EventKind::ReleaseComposed, subject, &message)?;
            Ok(if inserted == 1 { Recorded::NewRelease } else { Recorded::KnownRelease })
        })
    }

    /// The latest composition of an environment.
    pub fn latest_composition(&self, env: &str) -> Result<Option<Composition>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT seq, env, release_id, commit_id, inputs, at, actor FROM compositions
                 WHERE env = ?1 ORDER BY seq DESC LIMIT 1",
                [env],
                |r| {
                    Ok(Composition {
                        seq: r.get(0)?,
                        env: r.get(1)?,
                        release: r.get(2)?,
                        commit: r.get(3)?,
                        inputs: r.get(4)?,
                        at: r.get(5)?,
                        actor: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// The environments a release was composed for.
    pub fn composed_for(&self, release: &ReleaseId) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT DISTINCT env FROM compositions WHERE release_id = ?1 ORDER BY env")?;
        let rows = stmt.query_map([release], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Finds a release by its full id or a unique prefix (at least 4 characters).
    pub fn resolve_release(&self, prefix: &str) -> Result<ReleaseId> {
        let not_found = || Error::NotFound {
            kind: "release",
            id: prefix.to_string(),
        };
        if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        if prefix.len() < 4 {
            return Err(Error::Refused(format!(
                "release id `{prefix}` is too short; give at least 4 of its hex characters"
            )));
        }
        let mut stmt = self.conn().prepare(
            "SELECT id FROM releases WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 5",
        )?;
        let ids: Vec<ReleaseId> = stmt
            .query_map([prefix.to_ascii_lowercase()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [] => Err(not_found()),
            [one] => Ok(one.clone()),
            many => Err(Error::Ambiguous {
                prefix: prefix.to_string(),
                matches: many
                    .iter()
                    .map(ReleaseId::short)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// One release.
    pub fn release(&self, id: &ReleaseId) -> Result<Release> {
        let (tree, commit, base_commit, composed_for, created_at) = self
            .conn()
            .query_row(
                "SELECT tree, commit_id, base_commit, composed_for, created_at FROM releases WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound { kind: "release", id: id.to_string() })?;
        let mut stmt = self
            .conn()
            .prepare("SELECT card, branch, commit_id FROM release_cards WHERE release_id = ?1 ORDER BY position")?;
        let cards = stmt
            .query_map([id], |r| {
                Ok(MergedCard {
                    id: r.get::<_, CardId>(0)?,
                    branch: r.get(1)?,
                    commit: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn().prepare(
            "SELECT service, version, path, build, run, health, route, image, digest, image_id, protocol
             FROM release_services
             WHERE release_id = ?1 ORDER BY service",
        )?;
        let services = stmt
            .query_map([id], |r| {
                let service: String = r.get(0)?;
                Ok(ServiceVersion {
                    version: r.get(1)?,
                    recipe: Service {
                        name: service.clone(),
                        path: r.get(2)?,
                        build: r.get(3)?,
                        run: r.get(4)?,
                        health: r.get(5)?,
                        route: r.get(6)?,
                        image: r.get(7)?,
                        // Scale and timeouts are read from hifi.toml,
                        // never from a release.
                        replicas: 1,
                        protocol: r.get(10)?,
                        request_timeout: None,
                    },
                    digest: r.get(8)?,
                    image_id: r.get(9)?,
                    service,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Release {
            id: id.clone(),
            tree,
            commit,
            base_commit,
            cards,
            services,
            composed_for,
            created_at,
        })
    }

    /// Every release, newest first.
    pub fn releases(&self) -> Result<Vec<Release>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT id FROM releases ORDER BY created_at DESC, id")?;
        let ids: Vec<ReleaseId> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.iter().map(|id| self.release(id)).collect()
    }
}

impl Store {
    /// Every composition that produced a release, oldest first.
    pub fn compositions_of(&self, release: &ReleaseId) -> Result<Vec<Composition>> {
        let mut stmt = self.conn().prepare(
            "SELECT seq, env, release_id, commit_id, inputs, at, actor FROM compositions
             WHERE release_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([release], |r| {
            Ok(Composition {
                seq: r.get(0)?,
                env: r.get(1)?,
                release: r.get(2)?,
                commit: r.get(3)?,
                inputs: r.get(4)?,
                at: r.get(5)?,
                actor: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// What an artifact is: a directory under `.hifi/artifacts` or an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A directory, keyed by its name under its service's.
    Directory,
    /// A container image, keyed by its tag and Dockerfile.
    Image,
    /// An image pushed to a registry, keyed by [`pushed_key`]; its digest
    /// is the registry's (the manifest's), which the cluster pulls by.
    Pushed,
}

/// The key of an image pushed to `repository` (`<registry>/<service>`):
/// `<repository>@<image id>`, so the same bytes are pushed once per
/// repository.
pub fn pushed_key(repository: &str, image_id: &str) -> String {
    format!("{repository}@{image_id}")
}

impl ArtifactKind {
    fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Directory => "directory",
            ArtifactKind::Image => "image",
            ArtifactKind::Pushed => "pushed",
        }
    }
}

impl Store {
    /// The digest an artifact had when it was built.
    pub fn artifact_digest(
        &self,
        service: &str,
        kind: ArtifactKind,
        key: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT digest FROM artifacts WHERE service = ?1 AND kind = ?2 AND key = ?3",
                params![service, kind.as_str(), key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records the digest of an artifact just built (replacing the record
    /// of one built before under the same key, which no longer exists).
    pub fn record_artifact(
        &mut self,
        service: &str,
        kind: ArtifactKind,
        key: &str,
        digest: &str,
        at: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO artifacts (service, kind, key, digest, built_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (service, kind, key) DO UPDATE SET digest = ?4, built_at = ?5",
                params![service, kind.as_str(), key, digest, at],
            )?;
            Ok(())
        })
    }
}
