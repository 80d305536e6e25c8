//! `hifi.toml`: the validated configuration every part of hifi reads.
//!
//! Parsed in two passes: serde reads the raw shape ([`raw`], unknown keys
//! and type errors caught there with toml's span), then [`validate`] checks
//! the rules that span several keys — stages that exist, a `promote_from`
//! chain without cycles, one port per environment, one route per service —
//! and builds the resolved types of this module.
//!
//! Every error is a [`ConfigError`] naming the key, the byte span and the
//! line, so a user sees exactly what to change. Values like `${PAYMENT_KEY}`
//! are kept as written: they are resolved from hifi's own environment only
//! when a service starts ([`interpolate`]), so secrets are never stored or
//! shown.

mod raw;
#[cfg(test)]
mod team_tests;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use crate::protocol::Protocol;
use crate::workflow::{Stage, Workflow};

/// The validated project configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project's name.
    pub name: String,
    /// The trunk every composition starts from.
    pub base: String,
    /// The card workflow.
    pub workflow: Workflow,
    /// Whether cards follow their releases into production (to Deploy when
    /// a promotion starts, to Done when it is verified, back on a rollback).
    pub follow_releases: bool,
    /// Services, in config order.
    pub services: Vec<Service>,
    /// Environments, in config order (lowest first by convention).
    pub environments: Vec<Environment>,
    /// Where images are pushed for Kubernetes environments.
    pub registry: Option<Registry>,
    /// The team server `hifi up` serves (`[server]`), if configured.
    pub server: Option<Server>,
    /// Webhooks (`[[notify]]`), in config order.
    pub notify: Vec<Notify>,
}

/// `[server]`: where `hifi up` serves the team's HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The address to listen on.
    pub listen: std::net::SocketAddr,
    /// Certificate and key (PEM) to serve https with; plain http without.
    pub tls: Option<Tls>,
    /// Where users reach the server when a reverse proxy stands in front
    /// of it (`scheme://host[:port]`, lowercase, no path): the only origin
    /// the dashboard's writes may come from, and the link webhooks send.
    pub url: Option<String>,
}

impl Server {
    /// Where users reach the dashboard: `url`, else the listen address.
    pub fn public_url(&self) -> String {
        self.url.clone().unwrap_or_else(|| {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", self.listen)
        })
    }
}

/// The certificate chain and private key of an https listener, as written
/// (a relative path is relative to the repository root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
}

/// One `[[notify]]` webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Where to POST, as written (`${VAR}` resolved from hifi's environment
    /// only when delivering, never stored or shown).
    pub url: String,
    /// The body's shape.
    pub format: NotifyFormat,
    /// Which events, by name; `*` matches any run of characters.
    pub events: Vec<crate::notify::EventPattern>,
    /// Signs `json` bodies (HMAC-SHA256 in `x-hifi-signature`), as written.
    pub secret: Option<String>,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// The event as JSON, signed when a secret is set.
    Json,
    /// A readable Slack message (`{"text": ...}`).
    Slack,
}

impl NotifyFormat {
    /// The name written in `hifi.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyFormat::Json => "json",
            NotifyFormat::Slack => "slack",
        }
    }
}

/// One microservice of the project: where it lives and its recipe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Service {
    /// Name, unique in the project.
    pub name: String,
    /// Directory in the repository, relative, `/`-separated, no `..`.
    pub path: String,
    /// Command run once per service version, in an export of its directory.
    pub build: Option<String>,
    /// Command that starts one instance; it gets `PORT` and `HIFI_*`.
    pub run: String,
    /// Path that answers 2xx when an instance is ready.
    pub health: String,
    /// Path prefix on the environment's public listener.
    pub route: String,
    /// The Dockerfile, relative to `path`, that container runtimes build
    /// the service's image from.
    pub image: Option<String>,
    /// Instances per slot. Scale, not content: it is read from the current
    /// `hifi.toml`, never from a release's recorded recipe, and is not part
    /// of a release's id.
    pub replicas: u16,
    /// What its instances speak: how the proxy forwards to them and how
    /// their health is probed.
    ///
    /// Content, recorded with the release: the protocol is a property of
    /// the code (a version that serves gRPC does not answer HTTP/1.1), so it
    /// travels with the release through the chain exactly as verified, it
    /// counts in the release id (only when not `http1`, so releases recorded
    /// before it keep their ids), and during a rollout each slot is spoken
    /// to in its own release's protocol.
    pub protocol: Protocol,
    /// How long the proxy waits for an instance's response head, counted
    /// once the request is sent; `None` keeps the proxy's default (60 s).
    ///
    /// A serving setting, like `replicas`: read from the current
    /// `hifi.toml`, never recorded with a release nor part of its id. It
    /// does not change what the service does, only how long its users are
    /// made to wait before a 504 that counts against the slot — the kind of
    /// limit an operator tightens or loosens during an incident without
    /// sending a new release through every environment. A release's
    /// recorded recipe always carries `None`.
    #[serde(
        rename = "request_timeout_ms",
        serialize_with = "serialize_millis",
        deserialize_with = "deserialize_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>)]
    pub request_timeout: Option<Duration>,
}

/// The most instances of one service a slot may have.
pub const MAX_REPLICAS: u16 = 64;

/// The bounds of a service's `request_timeout`: long enough for a
/// loopback answer, short enough that a stuck request frees its connection
/// within the hour.
pub const REQUEST_TIMEOUT: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);

fn serialize_millis<S: serde::Serializer>(
    value: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

fn deserialize_millis<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let millis: Option<u64> = serde::Deserialize::deserialize(d)?;
    Ok(millis.map(Duration::from_millis))
}

/// Where an environment's releases come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Composed from the base branch and the cards at this stage or later.
    Cards(Stage),
    /// Only releases verified in one of the named environments (the
    /// fidelity gate).
    Promote(Vec<String>),
    /// Composed from the named environment's live release and the open
    /// hotfix cards: the hotfix lane.
    Hotfix(String),
}

/// How a release replaces the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Start beside the old release, switch all traffic at once when healthy.
    BlueGreen,
    /// Move a growing, sticky share of users, judged at each step.
    Canary,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::BlueGreen => "blue-green",
            Strategy::Canary => "canary",
        })
    }
}

/// Where an environment's service instances run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Local processes on this machine (the embedded default).
    #[default]
    Local,
    /// Containers of a Docker engine on this machine, with host networking.
    Docker,
    /// Pods of a Kubernetes cluster, one Deployment per (service, slot).
    Kubernetes,
}

impl RuntimeKind {
    /// The name written in `hifi.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Local => "local",
            RuntimeKind::Docker => "docker",
            RuntimeKind::Kubernetes => "kubernetes",
        }
    }

    /// Whether instances run from images (every service needs `image`).
    pub fn runs_images(self) -> bool {
        match self {
            RuntimeKind::Local => false,
            RuntimeKind::Docker | RuntimeKind::Kubernetes => true,
        }
    }

    /// Whether the runtime scales a slot itself: the controller starts one
    /// instance per (service, slot) — replica 0, carrying the number of
    /// replicas — and the runtime keeps that many copies running (a
    /// Deployment's `replicas`). Otherwise the controller starts, watches
    /// and restarts every replica itself.
    pub fn scales_slots(self) -> bool {
        matches!(self, RuntimeKind::Kubernetes)
    }

    /// How many instances the controller itself starts for a service with
    /// `replicas` copies per slot: all of them, or one for a runtime that
    /// scales slots itself.
    pub fn instances_per_slot(self, replicas: u16) -> u16 {
        if self.scales_slots() { 1 } else { replicas }
    }

    /// Whether the environment's data plane (its proxy) runs where its
    /// instances run rather than on this machine: in the cluster, reached
    /// through the API server.
    pub fn runs_data_plane(self) -> bool {
        matches!(self, RuntimeKind::Kubernetes)
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an environment's proxy is reached from outside its cluster: the type
/// of the `hifi-proxy` Service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Expose {
    /// Inside the cluster only (the default): an Ingress or a port-forward
    /// leads users to it.
    #[default]
    ClusterIp,
    /// A port on every node.
    NodePort,
    /// The cloud's load balancer.
    LoadBalancer,
}

impl Expose {
    /// The Service type, as Kubernetes and `hifi.toml` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Expose::ClusterIp => "ClusterIP",
            Expose::NodePort => "NodePort",
            Expose::LoadBalancer => "LoadBalancer",
        }
    }
}

impl fmt::Display for Expose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an environment with `runtime = "kubernetes"` runs
/// (`[environment.kubernetes]`, every key optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubernetes {
    /// The kubeconfig context; `None` is the kubeconfig's current one.
    pub context: Option<String>,
    /// The namespace: `namespace`, else `<project>-<env>`.
    pub namespace: String,
    /// The type of the proxy's Service.
    pub expose: Expose,
    /// The image the environment's proxy runs (`hifi proxy`); `None`:
    /// `<registry>/hifi:<hifi's version>`.
    pub proxy_image: Option<String>,
    /// What each service container asks for and may use
    /// (`requests`/`limits`). A serving setting: never part of a release.
    pub resources: Resources,
}

/// CPU and memory for every service container of a Kubernetes environment,
/// as Kubernetes quantities written in `hifi.toml` (`"250m"`, `"256Mi"`).
/// An empty map leaves that side to the namespace's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// What the scheduler reserves: resource name (`cpu`, `memory`) to
    /// quantity.
    pub requests: BTreeMap<String, String>,
    /// The most a container may use.
    pub limits: BTreeMap<String, String>,
}

impl Resources {
    /// Whether neither requests nor limits are set.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty()
    }
}

/// The resources `requests` and `limits` may name.
pub const RESOURCE_NAMES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The value of a Kubernetes quantity (`"250m"` is 0.25, `"1Gi"` is
/// 2^30), or why it is not one. Accepted: a non-negative decimal number
/// with an optional suffix, binary (`Ki`…`Ei`) or decimal (`m`, `k`, `M`,
/// `G`, `T`, `P`, `E`); exponent forms (`1e3`) are not.
pub fn parse_quantity(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let well_formed = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    let factor = match suffix {
        "" => Some(1.0),
        "m" => Some(1e-3),
        "k" => Some(1e3),
        "M" => Some(1e6),
        "G" => Some(1e9),
        "T" => Some(1e12),
        "P" => Some(1e15),
        "E" => Some(1e18),
        "Ki" => Some(1024f64),
        "Mi" => Some(1024f64.powi(2)),
        "Gi" => Some(1024f64.powi(3)),
        "Ti" => Some(1024f64.powi(4)),
        "Pi" => Some(1024f64.powi(5)),
        "Ei" => Some(1024f64.powi(6)),
        _ => None,
    };
    match (well_formed, factor, number.parse::<f64>()) {
        (true, Some(factor), Ok(n)) => Ok(n * factor),
        _ => Err(format!(
            "`{text}` is not a Kubernetes quantity: write a number with an optional suffix, like \"250m\", \"2\", \"512Mi\" or \"1G\""
        )),
    }
}

/// Where images are pushed for Kubernetes environments (`[registry]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host[:port]/path`, without a scheme: a service's image is pushed
    /// as `<url>/<service>` and run by digest.
    pub url: String,
}

/// Which part of a request identifies a user for sticky canary assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// A cookie by name.
    Cookie(String),
    /// A request header by name.
    Header(String),
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserKey::Cookie(name) => write!(f, "cookie:{name}"),
            UserKey::Header(name) => write!(f, "header:{name}"),
        }
    }
}

/// How a canary is stepped and judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// Percent of users on the candidate at each step, increasing, ending at 100.
    pub steps: Vec<f64>,
    /// How long each step is watched before it is judged.
    pub interval: Duration,
    /// Highest acceptable share of failed requests on the candidate.
    pub max_error_rate: f64,
    /// Highest acceptable 99th percentile latency on the candidate.
    pub max_p99_ms: u64,
    /// Fewer requests than this extend the step instead of passing it.
    pub min_requests: u64,
    /// How many times a step is extended for want of traffic before the
    /// canary pauses and says so.
    pub max_extensions: u32,
    /// Whether the candidate is also compared with the stable slot over the
    /// same window, so a problem both share does not fail it and a
    /// regression under loose limits does.
    pub compare: bool,
    /// Highest acceptable error ratio above the stable slot's (0.01: one
    /// percentage point).
    pub max_error_rate_increase: f64,
    /// Highest acceptable p99 above the stable slot's, as a fraction of it
    /// (0.5: half again as slow).
    pub max_p99_increase: f64,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            steps: vec![10.0, 50.0, 100.0],
            interval: Duration::from_secs(30),
            max_error_rate: 0.01,
            max_p99_ms: 500,
            min_requests: 20,
            max_extensions: 3,
            compare: true,
            max_error_rate_increase: 0.01,
            max_p99_increase: 0.5,
        }
    }
}

/// One environment of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// Name, unique in the project.
    pub name: String,
    /// Port of the public listener.
    pub port: u16,
    /// Cards or promotion.
    pub origin: Origin,
    /// Rollout strategy.
    pub strategy: Strategy,
    /// Optional command run against the candidate before the switch.
    pub smoke: Option<String>,
    /// How long in-flight requests may finish on the old slot.
    pub drain: Duration,
    /// Sign-offs needed before a release goes live here.
    pub approvals: u32,
    /// Four-eyes: only approvals by people other than the one deploying
    /// count (see [`crate::fidelity`]).
    pub four_eyes: bool,
    /// Healthy this long as the active slot makes a release verified here.
    pub soak: Duration,
    /// Sticky user key for canary assignment.
    pub user_key: UserKey,
    /// Token testers must present to reach the candidate (may be `${VAR}`).
    pub preview_token: Option<String>,
    /// Canary settings (used when the strategy is canary).
    pub canary: Canary,
    /// Where its instances run (`runtime` of the environment, else of the project).
    pub runtime: RuntimeKind,
    /// The cluster settings, exactly when `runtime` is Kubernetes.
    pub kubernetes: Option<Kubernetes>,
    /// When deployments into it may start; none means any time.
    pub windows: Vec<crate::window::Window>,
    /// Per-environment settings passed to services, as written (`${VAR}` kept).
    pub vars: BTreeMap<String, String>,
}

impl Environment {
    /// The stage cards must reach to be included, for environments
    /// composed from cards.
    pub fn cards_from(&self) -> Option<&Stage> {
        match &self.origin {
            Origin::Cards(stage) => Some(stage),
            _ => None,
        }
    }

    /// The environments this one promotes from (empty unless it is gated).
    pub fn promote_from(&self) -> &[String] {
        match &self.origin {
            Origin::Promote(from) => from,
            _ => &[],
        }
    }

    /// Whether it is gated: it takes only releases verified elsewhere.
    pub fn promotes(&self) -> bool {
        matches!(self.origin, Origin::Promote(_))
    }

    /// The environment whose live release this one fixes, for a hotfix
    /// environment.
    pub fn hotfix_of(&self) -> Option<&str> {
        match &self.origin {
            Origin::Hotfix(target) => Some(target),
            _ => None,
        }
    }

    /// Where its releases come from, in words: `cards from In Dev`,
    /// `promotes from prep or hotfix`, `fixes prod`.
    pub fn describe_origin(&self) -> String {
        match &self.origin {
            Origin::Cards(stage) => format!("cards from {stage}"),
            Origin::Promote(from) => format!("promotes from {}", from.join(" or ")),
            Origin::Hotfix(target) => format!("fixes {target}'s live release"),
        }
    }
}

impl Config {
    /// Looks an environment up by name.
    pub fn environment(&self, name: &str) -> Result<&Environment, String> {
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                format!(
                    "unknown environment `{name}`; hifi.toml defines: {}",
                    self.environments
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// The production environments: gated ones no environment promotes
    /// from — the ends of the promotion chains, where cards follow their
    /// releases to Deploy and Done.
    pub fn production(&self) -> impl Iterator<Item = &Environment> {
        self.environments.iter().filter(|e| {
            e.promotes()
                && !self
                    .environments
                    .iter()
                    .any(|other| other.promote_from().contains(&e.name))
        })
    }

    /// Looks a service up by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Parses and validates the text of a `hifi.toml`.
    pub fn parse(source: &str) -> Result<Config, ConfigError> {
        validate::parse(source)
    }
}

/// A problem in `hifi.toml`: which key, what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key (`environment[2].cards_from`), empty when unknown.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Byte range in the source.
    pub span: Option<Range<usize>>,
    /// 1-based line of the span's start.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Replaces each `${NAME}` in `text` with `lookup(NAME)`. A name the lookup
/// does not know is an error naming it, so a missing secret stops a
/// deployment instead of starting a service with an empty value.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{text}` has a `${{` without its closing `}}`"))?;
        let name = &after[..end];
        if !is_env_var_name(name) {
            return Err(format!(
                "`${{{name}}}` does not name an environment variable"
            ));
        }
        let value = lookup(name).ok_or_else(|| {
            format!("`{name}` is not set in hifi's environment; export it before starting hifi")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl std::str::FromStr for UserKey {
    type Err = String;

    /// Parses `cookie:NAME` or `header:NAME` (header names are lower-cased).
    /// The one parser of user keys: the config and the proxy's tables both
    /// read them through it.
    fn from_str(text: &str) -> Result<UserKey, String> {
        parse_user_key(text)
    }
}

/// Parses `cookie:NAME` or `header:NAME`.
pub(crate) fn parse_user_key(text: &str) -> Result<UserKey, String> {
    let valid = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match text.split_once(':') {
        Some(("cookie", name)) if valid(name) => Ok(UserKey::Cookie(name.to_string())),
        Some(("header", name)) if valid(name) => Ok(UserKey::Header(name.to_ascii_lowercase())),
        _ => Err(format!(
            "`{text}` is not a user key; write \"cookie:NAME\" or \"header:NAME\""
        )),
    }
}

pub(crate) fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
