//! What differs between two environments: cards in one and not the other,
//! cards merged at different commits, service versions and per-environment
//! vars. This is the "why does it break in prod" view; vars are compared as
//! written (`${SECRET}`), so secrets are never shown.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::release::{MergedCard, Release};

/// One side of a diff: an environment, its current release (if any) and its vars.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// Environment name.
    pub env: &'a str,
    /// The release it runs, or would run next.
    pub release: Option<&'a Release>,
    /// Its vars as written in the config.
    pub vars: &'a BTreeMap<String, String>,
}

/// A value that differs: `a` on the left, `b` on the right, `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    /// What differs (a card id, a service or a var name).
    pub name: String,
    /// Left value.
    pub a: Option<String>,
    /// Right value.
    pub b: Option<String>,
}

/// Every difference between two environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvDiff {
    /// Left environment.
    pub a: String,
    /// Right environment.
    pub b: String,
    /// Left release id (full), if any.
    pub release_a: Option<String>,
    /// Right release id (full), if any.
    pub release_b: Option<String>,
    /// Cards by id, with the commit merged on each side.
    pub cards: Vec<Change>,
    /// Service versions that differ.
    pub services: Vec<Change>,
    /// Vars that differ.
    pub vars: Vec<Change>,
}

impl EnvDiff {
    /// Whether the two environments run the same thing with the same settings.
    pub fn is_empty(&self) -> bool {
        self.release_a == self.release_b
            && self.cards.is_empty()
            && self.services.is_empty()
            && self.vars.is_empty()
    }
}

fn changes<'a>(
    a: impl IntoIterator<Item = (&'a str, &'a str)>,
    b: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Change> {
    let a: BTreeMap<&str, &str> = a.into_iter().collect();
    let b: BTreeMap<&str, &str> = b.into_iter().collect();
    let names: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    names
        .into_iter()
        .filter(|n| a.get(n) != b.get(n))
        .map(|n| Change {
            name: n.to_string(),
            a: a.get(n).map(|v| v.to_string()),
            b: b.get(n).map(|v| v.to_string()),
        })
        .collect()
}

fn cards(release: Option<&Release>) -> impl Iterator<Item = (&str, &str)> {
    release
        .into_iter()
        .flat_map(|r| r.cards.iter())
        .map(|MergedCard { id, commit, .. }| (id.as_str(), commit.as_str()))
}

fn services(release: Option<&Release>) -> impl Iterator<Item = (&str, &str)> {
    release
        .into_iter()
        .flat_map(|r| r.services.iter())
        .map(|v| (v.service.as_str(), v.version.as_str()))
}

/// Compares two environments.
pub fn diff(a: Side<'_>, b: Side<'_>) -> EnvDiff {
    EnvDiff {
        a: a.env.to_string(),
        b: b.env.to_string(),
        release_a: a.release.map(|r| r.id.as_str().to_string()),
        release_b: b.release.map(|r| r.id.as_str().to_string()),
        cards: changes(cards(a.release), cards(b.release)),
        services: changes(services(a.release), services(b.release)),
        vars: changes(
            a.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            b.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::CardId;
    use crate::release::{ReleaseId, ServiceVersion};

    fn release(cards: &[(&str, &str)], services: &[(&str, &str)]) -> Release {
        Release {
            id: ReleaseId::compute(&format!("{cards:?}{services:?}"), &[]),
            tree: "t".into(),
            commit: "c".into(),
            base_commit: "b".into(),
            cards: cards
                .iter()
                .map(|(id, commit)| MergedCard {
                    id: CardId::parse(id).unwrap(),
                    branch: format!("f/{id}"),
                    commit: commit.to_string(),
                })
                .collect(),
            services: services
                .iter()
                .map(|(s, v)| ServiceVersion {
                    service: s.to_string(),
                    version: v.to_string(),
                    recipe: crate::Service {
                        name: s.to_string(),
                        path: format!("services/{s}"),
                        build: None,
                        run: "true".into(),
                        health: "/healthz".into(),
                        route: format!("/{s}"),
                        image: None,
                        replicas: 1,
                        protocol: crate::Protocol::Http1,
                        request_timeout: None,
                    },
                    digest: None,
                    image_id: None,
                })
                .collect(),
            composed_for: "dev".into(),
            created_at: 0,
        }
    }

    #[test]
    fn shows_cards_services_and_vars_that_differ() {
        let a = release(
            &[("A-1", "c1"), ("B-2", "c2")],
            &[("api", "v1"), ("web", "w1")],
        );
        let b = release(
            &[("A-1", "c1"), ("C-3", "c3")],
            &[("api", "v2"), ("web", "w1")],
        );
        let vars_a = BTreeMap::from([("MODE".to_string(), "test".to_string())]);
        let vars_b = BTreeMap::from([("MODE".to_string(), "live".to_string())]);
        let d = diff(
            Side {
                env: "uat",
                release: Some(&a),
                vars: &vars_a,
            },
            Side {
                env: "prod",
                release: Some(&b),
                vars: &vars_b,
            },
        );
        let names = |c: &[Change]| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.cards), ["B-2", "C-3"]);
        assert_eq!(d.cards[0].b, None);
        assert_eq!(names(&d.services), ["api"]);
        assert_eq!(names(&d.vars), ["MODE"]);
        assert!(!d.is_empty());
    }

    #[test]
    fn identical_environments_have_an_empty_diff() {
        let r = release(&[("A-1", "c1")], &[("api", "v1")]);
        let vars = BTreeMap::new();
        let side = |env| Side {
            env,
            release: Some(&r),
            vars: &vars,
        };
        assert!(diff(side("a"), side("b")).is_empty());
    }
}
