//! Releases: immutable, content-addressed records of one composition.
//!
//! A release id is a SHA-256 of the composed tree and every service's recipe
//! (path, build, run, health, route, and image and protocol when given).
//! Composing the same content twice gives
//! the same id, whichever environment composed it — which is what lets a
//! higher environment prove it runs exactly what a lower one verified.
//! Per-environment vars are deliberately not part of the id: they differ by
//! design between environments, and `hifi diff` shows them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::card::CardId;
use crate::config::Service;

/// Length of the id prefix shown to users.
pub const SHORT_LEN: usize = 12;

/// A key for everything a composition depends on: the base commit, each
/// card's commit in merge order, and the service recipes. When it matches
/// the previous composition's key, composing again would change nothing.
pub fn composition_key(base: &str, cards: &[(&str, &str)], services: &[Service]) -> String {
    let mut inputs = format!("base\0{base}");
    for (card, commit) in cards {
        inputs.push_str(&format!("\0card\0{card}\0{commit}"));
    }
    ReleaseId::compute(&inputs, services).0
}

/// The content hash that names a release (64 hex characters).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String")]
#[schema(value_type = String)]
pub struct ReleaseId(String);

impl ReleaseId {
    /// Computes the id of a composed tree under the given service recipes.
    pub fn compute(tree: &str, services: &[Service]) -> ReleaseId {
        let mut sorted: Vec<&Service> = services.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut hash = Sha256::new();
        // Fields are NUL-separated so no value can shift into another.
        hash.update(b"hifi-release-v1\0tree\0");
        hash.update(tree.as_bytes());
        for s in sorted {
            for field in [
                "service",
                &s.name,
                &s.path,
                s.build.as_deref().unwrap_or(""),
                &s.run,
                &s.health,
                &s.route,
            ] {
                hash.update(b"\0");
                hash.update(field.as_bytes());
            }
            // Only when given, so releases recorded before images keep
            // their ids.
            if let Some(image) = &s.image {
                hash.update(b"\0image\0");
                hash.update(image.as_bytes());
            }
            // Likewise only when not the default, so every release recorded
            // before protocols (all HTTP/1.1) keeps its id. `request_timeout`
            // and `replicas` are serving settings and never count.
            if !s.protocol.is_http1() {
                hash.update(b"\0protocol\0");
                hash.update(s.protocol.as_str().as_bytes());
            }
        }
        let digest = hash.finalize();
        ReleaseId(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Wraps an id read back from the store.
    pub fn from_stored(id: String) -> ReleaseId {
        ReleaseId(id)
    }

    /// Whether `text` is a full release id: 64 lowercase hex characters.
    pub fn is_full(text: &str) -> bool {
        text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The full id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix shown to users.
    pub fn short(&self) -> &str {
        &self.0[..SHORT_LEN.min(self.0.len())]
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

impl TryFrom<String> for ReleaseId {
    type Error = String;

    fn try_from(text: String) -> Result<ReleaseId, String> {
        text.parse()
    }
}

impl AsRef<str> for ReleaseId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ReleaseId {
    type Err = String;

    /// Accepts a full id only; prefixes are resolved against the releases
    /// that exist, by the store.
    fn from_str(text: &str) -> Result<ReleaseId, String> {
        if ReleaseId::is_full(text) {
            Ok(ReleaseId(text.to_string()))
        } else {
            Err(format!(
                "`{text}` is not a full release id (64 hex characters)"
            ))
        }
    }
}

/// A card as merged into a release: which commit of its branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergedCard {
    /// The card.
    pub id: CardId,
    /// Its branch at composition time.
    pub branch: String,
    /// The exact commit merged.
    pub commit: String,
}

/// One service's version in a release: the hash of its subtree, and the
/// recipe (path, build, run, health, route, image, protocol) the release id was computed
/// from. Instances start from this recipe, never from a later `hifi.toml`,
/// so what runs is what was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceVersion {
    /// The service.
    pub service: String,
    /// The git tree id of the service's directory.
    pub version: String,
    /// The service's recipe at composition time.
    pub recipe: Service,
    /// The content digest of its directory artifact (`sha256:…`), recorded
    /// when it was built; every start checks it. `None` for releases
    /// recorded before digests.
    pub digest: Option<String>,
    /// The id of its image (`sha256:…`), when one was built for container
    /// runtimes.
    pub image_id: Option<String>,
}

/// An immutable release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Release {
    /// Content hash.
    pub id: ReleaseId,
    /// The composed tree.
    pub tree: String,
    /// The composed commit first written for it.
    pub commit: String,
    /// The base branch commit it started from.
    pub base_commit: String,
    /// The cards merged, in merge order.
    pub cards: Vec<MergedCard>,
    /// Every service's version.
    pub services: Vec<ServiceVersion>,
    /// The environment that first composed it.
    pub composed_for: String,
    /// When it was first composed (unix milliseconds).
    pub created_at: i64,
}

impl Release {
    /// Recomputes the id from the tree and the recorded recipes: equal to
    /// [`Release::id`] unless the record was tampered with.
    pub fn recomputed_id(&self) -> ReleaseId {
        let recipes: Vec<Service> = self.services.iter().map(|s| s.recipe.clone()).collect();
        ReleaseId::compute(&self.tree, &recipes)
    }

    /// One service of the release.
    pub fn service(&self, name: &str) -> Option<&ServiceVersion> {
        self.services.iter().find(|v| v.service == name)
    }

    /// The version of one service.
    pub fn version_of(&self, service: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|v| v.service == service)
            .map(|v| v.version.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    /// `ReleaseId::compute("abc", &[service("python3 app.py")])` as
    /// computed by hifi before services had a protocol.
    const PRE_PROTOCOL_ID: &str =
        "0d735fb894f7fca9af565e9aad08f63d29744b946ad2b2899507c077373c573a";

    fn service(run: &str) -> Service {
        Service {
            name: "catalog".into(),
            path: "services/catalog".into(),
            build: None,
            run: run.into(),
            health: "/healthz".into(),
            route: "/catalog".into(),
            image: None,
            replicas: 1,
            protocol: Protocol::Http1,
            request_timeout: None,
        }
    }

    #[test]
    fn same_content_same_id() {
        let a = ReleaseId::compute("abc", &[service("python3 app.py")]);
        let b = ReleaseId::compute("abc", &[service("python3 app.py")]);
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert_eq!(a.short().len(), SHORT_LEN);
    }

    #[test]
    fn tree_and_recipe_both_count() {
        let base = ReleaseId::compute("abc", &[service("python3 app.py")]);
        assert_ne!(
            base,
            ReleaseId::compute("abd", &[service("python3 app.py")])
        );
        assert_ne!(
            base,
            ReleaseId::compute("abc", &[service("python3 app2.py")])
        );
    }

    #[test]
    fn a_record_recomputes_to_its_id_unless_its_recipe_changed() {
        let recipe = service("python3 app.py");
        let mut release = Release {
            id: ReleaseId::compute("tree", std::slice::from_ref(&recipe)),
            tree: "tree".into(),
            commit: "c".into(),
            base_commit: "b".into(),
            cards: vec![],
            services: vec![ServiceVersion {
                service: recipe.name.clone(),
                version: "v".into(),
                recipe,
                digest: None,
                image_id: None,
            }],
            composed_for: "dev".into(),
            created_at: 0,
        };
        assert_eq!(release.recomputed_id(), release.id);
        release.services[0].recipe.run = "python3 other.py".into();
        assert_ne!(release.recomputed_id(), release.id);
    }

    #[test]
    fn protocol_counts_but_an_http1_recipe_keeps_the_id_it_had_before_protocols() {
        // The id of this recipe as hifi computed it before services had a
        // protocol: a release recorded then must keep its id.
        let before = ReleaseId::compute("abc", &[service("python3 app.py")]);
        assert_eq!(
            before.as_str(),
            PRE_PROTOCOL_ID,
            "an HTTP/1.1 recipe hashes as it did before protocols"
        );
        let mut grpc = service("python3 app.py");
        grpc.protocol = Protocol::Grpc;
        let mut h2c = grpc.clone();
        h2c.protocol = Protocol::H2c;
        let grpc_id = ReleaseId::compute("abc", std::slice::from_ref(&grpc));
        assert_ne!(grpc_id, before);
        assert_ne!(grpc_id, ReleaseId::compute("abc", &[h2c]));
    }

    #[test]
    fn serving_settings_do_not_count() {
        let base = ReleaseId::compute("abc", &[service("python3 app.py")]);
        let mut tuned = service("python3 app.py");
        tuned.replicas = 4;
        tuned.request_timeout = Some(std::time::Duration::from_secs(5));
        assert_eq!(ReleaseId::compute("abc", &[tuned]), base);
    }

    #[test]
    fn service_order_does_not_count() {
        let mut other = service("x");
        other.name = "zeta".into();
        let a = ReleaseId::compute("t", &[service("x"), other.clone()]);
        let b = ReleaseId::compute("t", &[other, service("x")]);
        assert_eq!(a, b);
    }
}
