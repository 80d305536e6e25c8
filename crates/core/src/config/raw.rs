//! The raw shape of `hifi.toml`, as serde reads it. Spans are kept on every
//! value a later check may need to point at; unknown keys are refused here.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) project: Spanned<RawProject>,
    pub(super) workflow: Option<Spanned<RawWorkflow>>,
    #[serde(default)]
    pub(super) service: Vec<Spanned<RawService>>,
    #[serde(default)]
    pub(super) environment: Vec<Spanned<RawEnvironment>>,
    pub(super) server: Option<Spanned<RawServer>>,
    #[serde(default)]
    pub(super) notify: Vec<Spanned<RawNotify>>,
    pub(super) registry: Option<Spanned<RawRegistry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) url: Spanned<String>,
    pub(super) format: Option<Spanned<String>>,
    pub(super) events: Option<Spanned<Vec<String>>>,
    pub(super) secret: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry {
    pub(super) url: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetes {
    pub(super) context: Option<Spanned<String>>,
    pub(super) namespace: Option<Spanned<String>>,
    pub(super) expose: Option<Spanned<String>>,
    pub(super) proxy_image: Option<Spanned<String>>,
    pub(super) requests: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub(super) limits: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProject {
    pub(super) name: Spanned<String>,
    #[serde(default = "default_base")]
    pub(super) base: Spanned<String>,
    pub(super) runtime: Option<Spanned<String>>,
}

fn default_base() -> Spanned<String> {
    Spanned::new(0..0, "main".to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkflow {
    pub(super) stages: Option<Spanned<Vec<String>>>,
    pub(super) follow_releases: Option<bool>,
}

/// A string or a list of strings (`promote_from = "prep"` or `["prep", "hotfix"]`).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) name: Spanned<String>,
    pub(super) path: Spanned<String>,
    pub(super) build: Option<String>,
    pub(super) run: Spanned<String>,
    pub(super) health: Spanned<String>,
    pub(super) route: Spanned<String>,
    pub(super) image: Option<Spanned<String>>,
    pub(super) replicas: Option<Spanned<i64>>,
    pub(super) protocol: Option<Spanned<String>>,
    pub(super) request_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvironment {
    pub(super) name: Spanned<String>,
    pub(super) port: Spanned<i64>,
    pub(super) cards_from: Option<Spanned<String>>,
    pub(super) promote_from: Option<Spanned<OneOrMany>>,
    pub(super) hotfix_of: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) windows: Vec<Spanned<String>>,
    pub(super) strategy: Option<Spanned<String>>,
    pub(super) smoke: Option<String>,
    pub(super) drain: Option<Spanned<String>>,
    pub(super) approvals: Option<Spanned<i64>>,
    pub(super) four_eyes: Option<bool>,
    pub(super) soak: Option<Spanned<String>>,
    pub(super) user_key: Option<Spanned<String>>,
    pub(super) preview_token: Option<String>,
    pub(super) runtime: Option<Spanned<String>>,
    pub(super) canary: Option<Spanned<RawCanary>>,
    pub(super) kubernetes: Option<Spanned<RawKubernetes>>,
    #[serde(default)]
    pub(super) vars: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub(super) steps: Option<Spanned<Vec<f64>>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) max_error_rate: Option<Spanned<f64>>,
    pub(super) max_p99_ms: Option<Spanned<i64>>,
    pub(super) min_requests: Option<Spanned<i64>>,
    pub(super) max_extensions: Option<Spanned<i64>>,
    pub(super) compare: Option<bool>,
    pub(super) max_error_rate_increase: Option<Spanned<f64>>,
    pub(super) max_p99_increase: Option<Spanned<f64>>,
}
