//! `hifi.toml`: parsed in two passes. Serde reads the raw shape (unknown keys
//! and type errors are caught there, with toml's span), then [`Config::parse`]
//! checks the rules that span several keys — stages that exist, a
//! `promote_from` chain without cycles, one port per environment, one route
//! per service — and builds the validated [`Config`] the rest of hifi uses.
//!
//! Every error is a [`ConfigError`] naming the key, the byte span and the
//! line, so a user sees exactly what to change. Values like `${PAYMENT_KEY}`
//! are kept as written: they are resolved from hifi's own environment only
//! when a service starts, so secrets are never stored or shown.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::workflow::{Stage, Workflow};
use crate::{duration, is_valid_name};

/// The validated project configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project's name.
    pub name: String,
    /// The trunk every composition starts from.
    pub base: String,
    /// The card workflow.
    pub workflow: Workflow,
    /// Services, in config order.
    pub services: Vec<Service>,
    /// Environments, in config order (lowest first by convention).
    pub environments: Vec<Environment>,
}

/// One microservice of the project: where it lives and its recipe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
}

/// Where an environment's releases come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Composed from the base branch and the cards at this stage or later.
    Cards(Stage),
    /// Only releases verified in the named environment (the fidelity gate).
    Promote(String),
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
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            steps: vec![10.0, 50.0, 100.0],
            interval: Duration::from_secs(30),
            max_error_rate: 0.01,
            max_p99_ms: 500,
            min_requests: 20,
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
    /// Healthy this long as the active slot makes a release verified here.
    pub soak: Duration,
    /// Sticky user key for canary assignment.
    pub user_key: UserKey,
    /// Token testers must present to reach the candidate (may be `${VAR}`).
    pub preview_token: Option<String>,
    /// Canary settings (used when the strategy is canary).
    pub canary: Canary,
    /// Per-environment settings passed to services, as written (`${VAR}` kept).
    pub vars: BTreeMap<String, String>,
}

impl Environment {
    /// The stage cards must reach to be included, for composed environments.
    pub fn cards_from(&self) -> Option<&Stage> {
        match &self.origin {
            Origin::Cards(stage) => Some(stage),
            Origin::Promote(_) => None,
        }
    }

    /// The environment this one promotes from, if it is gated.
    pub fn promote_from(&self) -> Option<&str> {
        match &self.origin {
            Origin::Promote(from) => Some(from),
            Origin::Cards(_) => None,
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

    /// Looks a service up by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Parses and validates the text of a `hifi.toml`.
    pub fn parse(source: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(source).map_err(|e| ConfigError {
            key: String::new(),
            message: e.message().trim().to_string(),
            span: e.span(),
            line: e.span().map(|s| line_of(source, s.start)),
        })?;
        Validator { source }.validate(raw)
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

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

// The raw shape, as serde reads it. Spans are kept on every value a later
// check may need to point at.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: Spanned<RawProject>,
    workflow: Option<Spanned<RawWorkflow>>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
    #[serde(default)]
    environment: Vec<Spanned<RawEnvironment>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Spanned<String>,
    #[serde(default = "default_base")]
    base: Spanned<String>,
}

fn default_base() -> Spanned<String> {
    Spanned::new(0..0, "main".to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    stages: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    path: Spanned<String>,
    build: Option<String>,
    run: Spanned<String>,
    health: Spanned<String>,
    route: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    name: Spanned<String>,
    port: Spanned<i64>,
    cards_from: Option<Spanned<String>>,
    promote_from: Option<Spanned<String>>,
    strategy: Option<Spanned<String>>,
    smoke: Option<String>,
    drain: Option<Spanned<String>>,
    approvals: Option<Spanned<i64>>,
    soak: Option<Spanned<String>>,
    user_key: Option<Spanned<String>>,
    preview_token: Option<String>,
    canary: Option<Spanned<RawCanary>>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    steps: Option<Spanned<Vec<f64>>>,
    interval: Option<Spanned<String>>,
    max_error_rate: Option<Spanned<f64>>,
    max_p99_ms: Option<Spanned<i64>>,
    min_requests: Option<Spanned<i64>>,
}

struct Validator<'a> {
    source: &'a str,
}

impl Validator<'_> {
    fn error(
        &self,
        key: impl Into<String>,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
        let span = (span != (0..0)).then_some(span);
        ConfigError {
            key: key.into(),
            message: message.into(),
            line: span.as_ref().map(|s| line_of(self.source, s.start)),
            span,
        }
    }

    fn duration(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) => duration::parse(v.get_ref()).map_err(|m| self.error(key, v.span(), m)),
        }
    }

    fn name(&self, key: &str, name: &Spanned<String>, what: &str) -> Result<String, ConfigError> {
        if is_valid_name(name.get_ref()) {
            Ok(name.get_ref().clone())
        } else {
            Err(self.error(
                key,
                name.span(),
                format!(
                    "`{}` is not a valid {what} name; use lowercase letters, digits and dashes, starting with a letter (at most 40 characters)",
                    name.get_ref()
                ),
            ))
        }
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let project = raw.project.into_inner();
        if project.name.get_ref().trim().is_empty() {
            return Err(self.error(
                "project.name",
                project.name.span(),
                "the project needs a name",
            ));
        }
        let base = project.base.get_ref().clone();
        if base.is_empty() || base.starts_with('-') {
            return Err(self.error(
                "project.base",
                project.base.span(),
                format!("`{base}` is not a usable branch name"),
            ));
        }

        let workflow = match raw.workflow {
            None => Workflow::default(),
            Some(wf) => {
                let stages = wf.into_inner().stages;
                Workflow::new(stages.get_ref().clone())
                    .map_err(|m| self.error("workflow.stages", stages.span(), m))?
            }
        };

        let services = self.services(raw.service)?;
        let environments = self.environments(raw.environment, &workflow)?;

        Ok(Config {
            name: project.name.into_inner(),
            base,
            workflow,
            services,
            environments,
        })
    }

    fn services(&self, raw: Vec<Spanned<RawService>>) -> Result<Vec<Service>, ConfigError> {
        let mut services: Vec<Service> = Vec::new();
        let mut routes: HashMap<String, String> = HashMap::new();
        for (i, spanned) in raw.into_iter().enumerate() {
            let key = |field: &str| format!("service[{i}].{field}");
            let raw = spanned.into_inner();
            let name = self.name(&key("name"), &raw.name, "service")?;
            if services.iter().any(|s| s.name == name) {
                return Err(self.error(
                    key("name"),
                    raw.name.span(),
                    format!("service `{name}` is defined twice"),
                ));
            }
            let path = normalize_path(raw.path.get_ref())
                .map_err(|m| self.error(key("path"), raw.path.span(), m))?;
            for (field, value) in [("health", &raw.health), ("route", &raw.route)] {
                if !value.get_ref().starts_with('/') {
                    return Err(self.error(
                        key(field),
                        value.span(),
                        format!("`{}` must be a path starting with `/`", value.get_ref()),
                    ));
                }
            }
            let route = normalize_route(raw.route.get_ref());
            if let Some(other) = routes.insert(route.clone(), name.clone()) {
                return Err(self.error(
                    key("route"),
                    raw.route.span(),
                    format!("services `{other}` and `{name}` both claim route `{route}`; give each service its own prefix"),
                ));
            }
            if raw.run.get_ref().trim().is_empty() {
                return Err(self.error(key("run"), raw.run.span(), "the run command is empty"));
            }
            services.push(Service {
                name,
                path,
                build: raw.build.filter(|b| !b.trim().is_empty()),
                run: raw.run.into_inner(),
                health: raw.health.into_inner(),
                route,
            });
        }
        Ok(services)
    }

    fn environments(
        &self,
        raw: Vec<Spanned<RawEnvironment>>,
        workflow: &Workflow,
    ) -> Result<Vec<Environment>, ConfigError> {
        let mut envs: Vec<Environment> = Vec::new();
        let mut ports: HashMap<u16, String> = HashMap::new();
        // (index, promote_from value and span), checked once every name is known.
        let mut promotions = Vec::new();
        for (i, spanned) in raw.into_iter().enumerate() {
            let key = |field: &str| format!("environment[{i}].{field}");
            let env_span = spanned.span();
            let raw = spanned.into_inner();
            let name = self.name(&key("name"), &raw.name, "environment")?;
            if envs.iter().any(|e| e.name == name) {
                return Err(self.error(
                    key("name"),
                    raw.name.span(),
                    format!("environment `{name}` is defined twice"),
                ));
            }
            let port = u16::try_from(*raw.port.get_ref())
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    self.error(
                        key("port"),
                        raw.port.span(),
                        "a port is a number from 1 to 65535",
                    )
                })?;
            if let Some(other) = ports.insert(port, name.clone()) {
                return Err(self.error(
                    key("port"),
                    raw.port.span(),
                    format!("environments `{other}` and `{name}` both use port {port}; give each its own"),
                ));
            }
            let origin = match (&raw.cards_from, &raw.promote_from) {
                (Some(stage), None) => Origin::Cards(
                    workflow
                        .resolve(stage.get_ref())
                        .map_err(|m| self.error(key("cards_from"), stage.span(), m))?,
                ),
                (None, Some(from)) => {
                    promotions.push((i, from.clone()));
                    Origin::Promote(from.get_ref().clone())
                }
                (Some(stage), Some(_)) => {
                    return Err(self.error(
                        key("cards_from"),
                        stage.span(),
                        format!("environment `{name}` has both `cards_from` and `promote_from`; keep one"),
                    ));
                }
                (None, None) => {
                    return Err(self.error(
                        key("name"),
                        env_span,
                        format!("environment `{name}` needs `cards_from` (compose it from cards) or `promote_from` (take releases verified elsewhere)"),
                    ));
                }
            };
            let strategy = match raw
                .strategy
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("blue-green", _)) => Strategy::BlueGreen,
                Some(("canary", _)) => Strategy::Canary,
                Some((other, span)) => {
                    return Err(self.error(
                        key("strategy"),
                        span,
                        format!("unknown strategy `{other}`; use \"blue-green\" or \"canary\""),
                    ));
                }
            };
            let approvals = match &raw.approvals {
                None => 0,
                Some(v) => u32::try_from(*v.get_ref())
                    .ok()
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| {
                        self.error(
                            key("approvals"),
                            v.span(),
                            "approvals is a number from 0 to 100",
                        )
                    })?,
            };
            let user_key = match &raw.user_key {
                None => UserKey::Cookie("hifi-user".into()),
                Some(v) => parse_user_key(v.get_ref())
                    .map_err(|m| self.error(key("user_key"), v.span(), m))?,
            };
            let canary = self.canary(&key("canary"), raw.canary)?;
            let mut vars = BTreeMap::new();
            for (var, value) in raw.vars {
                if !is_env_var_name(&var) {
                    return Err(self.error(
                        format!("{}.{var}", key("vars")),
                        value.span(),
                        format!("`{var}` is not a usable environment variable name (letters, digits, `_`, not starting with a digit)"),
                    ));
                }
                if var.starts_with("HIFI_") || var == "PORT" {
                    return Err(self.error(
                        format!("{}.{var}", key("vars")),
                        value.span(),
                        format!("`{var}` is set by hifi itself; choose another name"),
                    ));
                }
                vars.insert(var, value.into_inner());
            }
            envs.push(Environment {
                drain: self.duration(&key("drain"), raw.drain, Duration::from_secs(30))?,
                soak: self.duration(&key("soak"), raw.soak, Duration::from_secs(30))?,
                name,
                port,
                origin,
                strategy,
                smoke: raw.smoke.filter(|s| !s.trim().is_empty()),
                approvals,
                user_key,
                preview_token: raw.preview_token.filter(|t| !t.is_empty()),
                canary,
                vars,
            });
        }

        for (i, from) in promotions {
            let key = format!("environment[{i}].promote_from");
            if !envs.iter().any(|e| &e.name == from.get_ref()) {
                return Err(self.error(
                    key,
                    from.span(),
                    format!(
                        "`{}` names no environment; hifi.toml defines: {}",
                        from.get_ref(),
                        envs.iter()
                            .map(|e| e.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            // Walk the chain from this environment; coming back to any
            // environment already seen is a cycle.
            let mut seen = HashSet::from([envs[i].name.as_str()]);
            let mut chain = vec![envs[i].name.as_str()];
            let mut current = &envs[i];
            while let Some(next) = current.promote_from() {
                chain.push(next);
                if !seen.insert(next) {
                    return Err(self.error(
                        key,
                        from.span(),
                        format!("promote_from forms a cycle: {}; one environment of the chain must use `cards_from`", chain.join(" -> ")),
                    ));
                }
                current = envs.iter().find(|e| e.name == next).expect("checked above");
            }
        }
        Ok(envs)
    }

    fn canary(&self, key: &str, raw: Option<Spanned<RawCanary>>) -> Result<Canary, ConfigError> {
        let defaults = Canary::default();
        let Some(raw) = raw else { return Ok(defaults) };
        let raw = raw.into_inner();
        let steps = match raw.steps {
            None => defaults.steps,
            Some(steps) => {
                let mut values = steps.get_ref().clone();
                let increasing = values.windows(2).all(|w| w[0] < w[1]);
                if values.is_empty()
                    || !increasing
                    || values.iter().any(|v| !(*v > 0.0 && *v <= 100.0))
                {
                    return Err(self.error(
                        format!("{key}.steps"),
                        steps.span(),
                        "steps are increasing percentages above 0 and at most 100, e.g. [10, 50, 100]",
                    ));
                }
                if values.last() != Some(&100.0) {
                    values.push(100.0);
                }
                values
            }
        };
        let max_error_rate = match raw.max_error_rate {
            None => defaults.max_error_rate,
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(self.error(
                    format!("{key}.max_error_rate"),
                    v.span(),
                    "max_error_rate is a ratio from 0 to 1 (0.01 means 1 %)",
                ));
            }
        };
        let non_negative =
            |field: &str, v: Option<Spanned<i64>>, default: u64| -> Result<u64, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(v) => u64::try_from(*v.get_ref()).map_err(|_| {
                        self.error(
                            format!("{key}.{field}"),
                            v.span(),
                            format!("{field} cannot be negative"),
                        )
                    }),
                }
            };
        Ok(Canary {
            steps,
            interval: self.duration(&format!("{key}.interval"), raw.interval, defaults.interval)?,
            max_error_rate,
            max_p99_ms: non_negative("max_p99_ms", raw.max_p99_ms, defaults.max_p99_ms)?,
            min_requests: non_negative("min_requests", raw.min_requests, defaults.min_requests)?,
        })
    }
}

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
fn parse_user_key(text: &str) -> Result<UserKey, String> {
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

fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Normalizes a service path: relative, `/`-separated, without `.` or empty
/// segments, never leaving the repository. `"."` (the root) becomes `""`.
fn normalize_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err(format!(
            "`{path}` must be a path relative to the repository root, like \"services/catalog\""
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "`{path}` leads outside the repository; service paths stay inside it"
                ));
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Routes compare without a trailing slash (`/catalog/` = `/catalog`), except `/`.
fn normalize_route(route: &str) -> String {
    let trimmed = route.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[project]
name = "shop"

[[service]]
name = "catalog"
path = "services/catalog"
run = "python3 app.py"
health = "/healthz"
route = "/catalog"

[[environment]]
name = "dev"
port = 8100
cards_from = "in-dev"

[[environment]]
name = "prod"
port = 8500
promote_from = "dev"
strategy = "canary"
approvals = 1
[environment.canary]
steps = [10, 50]
interval = "5s"
[environment.vars]
MODE = "${MODE}"
"#;

    fn err(source: &str) -> ConfigError {
        Config::parse(source).expect_err("config should be refused")
    }

    #[test]
    fn minimal_config_parses_with_defaults() {
        let config = Config::parse(MINIMAL).unwrap();
        assert_eq!(config.base, "main");
        let dev = config.environment("dev").unwrap();
        assert_eq!(dev.cards_from().unwrap().name, "In Dev");
        assert_eq!(dev.strategy, Strategy::BlueGreen);
        assert_eq!(dev.user_key, UserKey::Cookie("hifi-user".into()));
        let prod = config.environment("prod").unwrap();
        assert_eq!(prod.promote_from(), Some("dev"));
        assert_eq!(prod.canary.steps, vec![10.0, 50.0, 100.0]);
        assert_eq!(prod.canary.interval, Duration::from_secs(5));
        assert_eq!(prod.vars["MODE"], "${MODE}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = err(&MINIMAL.replace("route = \"/catalog\"", "route = \"/catalog\"\nreplicas = 3"));
        assert!(e.message.contains("replicas"), "{e}");
        assert_eq!(e.line, Some(11));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = err("[project\nname = 1");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn unknown_stage_is_refused() {
        let e = err(&MINIMAL.replace("in-dev", "in-review"));
        assert_eq!(e.key, "environment[0].cards_from");
        assert!(e.message.contains("In Dev"), "lists the stages: {e}");
        assert_eq!(e.line, Some(15));
    }

    #[test]
    fn promote_from_must_name_an_environment() {
        let e = err(&MINIMAL.replace("promote_from = \"dev\"", "promote_from = \"stage\""));
        assert_eq!(e.key, "environment[1].promote_from");
    }

    #[test]
    fn promote_cycle_is_refused() {
        let source = MINIMAL.replace("cards_from = \"in-dev\"", "promote_from = \"prod\"");
        let e = err(&source);
        assert!(e.message.contains("cycle"), "{e}");
    }

    #[test]
    fn self_promotion_is_a_cycle() {
        let e = err(&MINIMAL.replace("promote_from = \"dev\"", "promote_from = \"prod\""));
        assert!(e.message.contains("prod -> prod"), "{e}");
    }

    #[test]
    fn both_or_neither_origin_is_refused() {
        let both = MINIMAL.replace(
            "cards_from = \"in-dev\"",
            "cards_from = \"in-dev\"\npromote_from = \"prod\"",
        );
        assert!(err(&both).message.contains("both"));
        let neither = MINIMAL.replace("cards_from = \"in-dev\"", "");
        assert!(err(&neither).message.contains("needs `cards_from`"));
    }

    #[test]
    fn port_used_twice_is_refused() {
        let e = err(&MINIMAL.replace("8500", "8100"));
        assert_eq!(e.key, "environment[1].port");
        assert!(e.message.contains("8100"));
    }

    #[test]
    fn route_used_twice_is_refused() {
        let twice = format!(
            "{MINIMAL}\n[[service]]\nname = \"other\"\npath = \"services/other\"\nrun = \"x\"\nhealth = \"/h\"\nroute = \"/catalog/\"\n"
        );
        let e = err(&twice);
        assert_eq!(e.key, "service[1].route");
    }

    #[test]
    fn paths_outside_the_repository_are_refused() {
        for bad in ["../elsewhere", "/etc", "services/../../x"] {
            let e = err(&MINIMAL.replace("services/catalog", bad));
            assert_eq!(e.key, "service[0].path", "{bad}");
        }
        let ok =
            Config::parse(&MINIMAL.replace("services/catalog", "./services//catalog/")).unwrap();
        assert_eq!(ok.services[0].path, "services/catalog");
    }

    #[test]
    fn interpolation_fills_names_and_refuses_unknown_ones() {
        let lookup = |name: &str| (name == "KEY").then(|| "s3cret".to_string());
        assert_eq!(interpolate("a-${KEY}-b", lookup), Ok("a-s3cret-b".into()));
        assert_eq!(interpolate("plain $KEY", lookup), Ok("plain $KEY".into()));
        assert!(
            interpolate("${MISSING}", lookup)
                .unwrap_err()
                .contains("MISSING")
        );
        assert!(interpolate("${KEY", lookup).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(
            err(&MINIMAL.replace("\"5s\"", "\"5 seconds\"")).key,
            "environment[1].canary.interval"
        );
        assert_eq!(
            err(&MINIMAL.replace("[10, 50]", "[50, 10]")).key,
            "environment[1].canary.steps"
        );
        assert_eq!(
            err(&MINIMAL.replace("\"canary\"", "\"yolo\"")).key,
            "environment[1].strategy"
        );
        assert_eq!(
            err(&MINIMAL.replace("port = 8100", "port = 70000")).key,
            "environment[0].port"
        );
        assert_eq!(
            err(&MINIMAL.replace("name = \"catalog\"", "name = \"Cat Alog\"")).key,
            "service[0].name"
        );
        assert_eq!(
            err(&MINIMAL.replace("MODE =", "PORT =")).key,
            "environment[1].vars.PORT"
        );
    }
}
