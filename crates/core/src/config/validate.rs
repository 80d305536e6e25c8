//! The second pass over `hifi.toml`: the rules that span several keys, and
//! the resolved [`Config`] built from the raw shape.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::raw::{
    RawCanary, RawConfig, RawEnvironment, RawKubernetes, RawNotify, RawRegistry, RawServer,
    RawService,
};
use super::{
    Canary, Config, ConfigError, Environment, Expose, Kubernetes, MAX_REPLICAS, Notify,
    NotifyFormat, Origin, REQUEST_TIMEOUT, RESOURCE_NAMES, Registry, Resources, RuntimeKind,
    Server, Service, Strategy, Tls, UserKey, is_env_var_name, parse_quantity, parse_user_key,
};
use crate::protocol::Protocol;
use crate::workflow::Workflow;
use crate::{duration, is_valid_name};

/// Parses and validates the text of a `hifi.toml`.
pub(super) fn parse(source: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(source).map_err(|e| ConfigError {
        key: String::new(),
        message: e.message().trim().to_string(),
        span: e.span(),
        line: e.span().map(|s| line_of(source, s.start)),
    })?;
    Validator { source }.validate(raw)
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
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

    /// A runtime by name: `local`, `docker` or `kubernetes`.
    fn runtime(
        &self,
        key: &str,
        value: Option<&Spanned<String>>,
        default: RuntimeKind,
    ) -> Result<RuntimeKind, ConfigError> {
        match value.map(|v| (v.get_ref().as_str(), v.span())) {
            None => Ok(default),
            Some(("local", _)) => Ok(RuntimeKind::Local),
            Some(("docker", _)) => Ok(RuntimeKind::Docker),
            Some(("kubernetes", _)) => Ok(RuntimeKind::Kubernetes),
            Some((other, span)) => Err(self.error(
                key,
                span,
                format!("unknown runtime `{other}`; use \"local\", \"docker\" or \"kubernetes\""),
            )),
        }
    }

    /// `[registry]`: `url` is `host[:port]/path` without a scheme, a tag or
    /// a digest.
    fn registry(&self, raw: Option<Spanned<RawRegistry>>) -> Result<Option<Registry>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let url = raw.into_inner().url;
        let text = url.get_ref().trim_end_matches('/');
        let refuse = |why: &str| {
            Err(self.error(
                "registry.url",
                url.span(),
                format!(
                    "`{}` {why}; write the registry and repository path, e.g. \"registry.example.com/shop\"",
                    url.get_ref()
                ),
            ))
        };
        if text.contains("://") {
            return refuse("has a scheme");
        }
        let Some((host, path)) = text.split_once('/') else {
            return refuse("names no repository path after the registry host");
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !host_ok {
            return refuse("does not start with a registry host");
        }
        // Repository path components as the distribution spec allows them.
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !path.split('/').all(component_ok) {
            return refuse(
                "has a repository path that is not lowercase letters, digits and . _ - between slashes (or carries a tag or digest)",
            );
        }
        Ok(Some(Registry {
            url: text.to_owned(),
        }))
    }

    /// `[environment.kubernetes]` of environment `i`, resolved when it runs
    /// on Kubernetes; refused when it does not.
    #[allow(clippy::too_many_arguments)]
    fn kubernetes(
        &self,
        i: usize,
        project: &str,
        env: &str,
        runtime: RuntimeKind,
        (runtime_key, runtime_span): (String, Range<usize>),
        raw: Option<Spanned<RawKubernetes>>,
        registry: Option<&Registry>,
        services: &[Service],
    ) -> Result<Option<Kubernetes>, ConfigError> {
        let key = |field: &str| format!("environment[{i}].kubernetes{field}");
        if runtime != RuntimeKind::Kubernetes {
            return match raw {
                Some(raw) => Err(self.error(
                    key(""),
                    raw.span(),
                    format!("environment `{env}` has `[environment.kubernetes]` but runs on {runtime}; set `runtime = \"kubernetes\"` or remove the table"),
                )),
                None => Ok(None),
            };
        }
        if registry.is_none() {
            return Err(self.error(
                runtime_key.clone(),
                runtime_span.clone(),
                format!("environment `{env}` runs on Kubernetes, which pulls images from a registry; add `[registry] url = \"registry.example.com/{project}\"`"),
            ));
        }
        for service in services {
            let clash = if service.name == PROXY_NAME {
                Some(format!(
                    "`{PROXY_NAME}` is the name of the environment's proxy"
                ))
            } else {
                ["blue", "green"]
                    .iter()
                    .find(|slot| service.name.ends_with(&format!("-{slot}")))
                    .map(|slot| format!("names ending in `-{slot}` clash with the objects of another service's {slot} slot"))
            };
            if let Some(why) = clash {
                return Err(self.error(
                    runtime_key.clone(),
                    runtime_span.clone(),
                    format!(
                        "service `{}` cannot run on Kubernetes: {why}; rename the service",
                        service.name
                    ),
                ));
            }
            // The kubelet's readiness probe is an HTTP/1.1 GET, and the
            // in-cluster proxy's table does not carry protocols yet.
            if service.protocol.is_http2() {
                return Err(self.error(
                    runtime_key.clone(),
                    runtime_span.clone(),
                    format!(
                        "service `{}` speaks {}, which hifi does not run on Kubernetes yet (only http1); run environment `{env}` on the local or docker runtime",
                        service.name, service.protocol
                    ),
                ));
            }
        }
        let raw = raw.map(Spanned::into_inner);
        let (context, namespace, expose, proxy_image, requests, limits) = match raw {
            Some(r) => (
                r.context,
                r.namespace,
                r.expose,
                r.proxy_image,
                r.requests,
                r.limits,
            ),
            None => (None, None, None, None, None, None),
        };
        let resources = self.resources(&key, requests, limits)?;
        let context = match context {
            Some(c) if c.get_ref().trim().is_empty() => {
                return Err(self.error(
                    key(".context"),
                    c.span(),
                    "context is empty; remove it to use the kubeconfig's current context",
                ));
            }
            c => c.map(Spanned::into_inner),
        };
        let namespace = match namespace {
            Some(ns) if is_dns_label(ns.get_ref()) => ns.into_inner(),
            Some(ns) => {
                return Err(self.error(
                    key(".namespace"),
                    ns.span(),
                    format!("`{}` is not a Kubernetes namespace name: lowercase letters, digits and dashes, starting and ending with a letter or digit, at most 63 characters", ns.get_ref()),
                ));
            }
            None => {
                let default = format!("{project}-{env}");
                if !is_dns_label(&default) {
                    return Err(self.error(
                        runtime_key.clone(),
                        runtime_span.clone(),
                        format!("the default namespace `{default}` (<project>-<env>) is not a Kubernetes namespace name; set `[environment.kubernetes] namespace`"),
                    ));
                }
                default
            }
        };
        let expose = match expose.as_ref().map(|e| (e.get_ref().as_str(), e.span())) {
            None | Some(("ClusterIP", _)) => Expose::ClusterIp,
            Some(("NodePort", _)) => Expose::NodePort,
            Some(("LoadBalancer", _)) => Expose::LoadBalancer,
            Some((other, span)) => {
                return Err(self.error(
                    key(".expose"),
                    span,
                    format!("unknown Service type `{other}`; use \"ClusterIP\", \"NodePort\" or \"LoadBalancer\""),
                ));
            }
        };
        let proxy_image = match proxy_image {
            Some(image)
                if image.get_ref().trim().is_empty()
                    || image.get_ref().contains(char::is_whitespace) =>
            {
                return Err(self.error(key(".proxy_image"), image.span(), "proxy_image is an image reference without spaces, e.g. \"registry.example.com/hifi:0.1.0\""));
            }
            image => image.map(Spanned::into_inner),
        };
        Ok(Some(Kubernetes {
            context,
            namespace,
            expose,
            proxy_image,
            resources,
        }))
    }

    /// `requests` and `limits` of `[environment.kubernetes]`: known
    /// resource names, Kubernetes quantities, and no request above its
    /// limit (the API server would refuse every Deployment).
    fn resources(
        &self,
        key: &dyn Fn(&str) -> String,
        requests: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
        limits: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    ) -> Result<Resources, ConfigError> {
        let side = |field: &str, raw: Option<Spanned<BTreeMap<String, Spanned<String>>>>| {
            let mut out = BTreeMap::new();
            let Some(raw) = raw else {
                return Ok(out);
            };
            let span = raw.span();
            for (name, quantity) in raw.into_inner() {
                if !RESOURCE_NAMES.contains(&name.as_str()) {
                    return Err(self.error(
                        key(&format!(".{field}")),
                        span.clone(),
                        format!(
                            "unknown resource `{name}`; use {}",
                            RESOURCE_NAMES.map(|n| format!("`{n}`")).join(", ")
                        ),
                    ));
                }
                let value = parse_quantity(quantity.get_ref()).map_err(|m| {
                    self.error(key(&format!(".{field}.{name}")), quantity.span(), m)
                })?;
                out.insert(name, (quantity, value));
            }
            Ok(out)
        };
        let requests = side("requests", requests)?;
        let limits = side("limits", limits)?;
        for (name, (request, wanted)) in &requests {
            if let Some((limit, most)) = limits.get(name)
                && wanted > most
            {
                return Err(self.error(
                    key(&format!(".requests.{name}")),
                    request.span(),
                    format!(
                        "the {name} request `{}` is above its limit `{}`; Kubernetes would refuse every Deployment",
                        request.get_ref(),
                        limit.get_ref()
                    ),
                ));
            }
        }
        let plain = |side: BTreeMap<String, (Spanned<String>, f64)>| {
            side.into_iter()
                .map(|(name, (q, _))| (name, q.into_inner()))
                .collect()
        };
        Ok(Resources {
            requests: plain(requests),
            limits: plain(limits),
        })
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

        let (workflow, follow_releases) = match raw.workflow {
            None => (Workflow::default(), true),
            Some(wf) => {
                let wf = wf.into_inner();
                let workflow = match wf.stages {
                    None => Workflow::default(),
                    Some(stages) => Workflow::new(stages.get_ref().clone())
                        .map_err(|m| self.error("workflow.stages", stages.span(), m))?,
                };
                (workflow, wf.follow_releases.unwrap_or(true))
            }
        };

        let runtime = self.runtime(
            "project.runtime",
            project.runtime.as_ref(),
            RuntimeKind::Local,
        )?;
        let services = self.services(raw.service)?;
        let registry = self.registry(raw.registry)?;
        let context = Context {
            project: project.name.get_ref(),
            workflow: &workflow,
            default_runtime: runtime,
            project_runtime_span: project.runtime.as_ref().map(|r| r.span()),
            services: &services,
            registry: registry.as_ref(),
        };
        let environments = self.environments(raw.environment, &context)?;
        let server = raw.server.map(|s| self.server(s)).transpose()?;
        let notify = raw
            .notify
            .into_iter()
            .enumerate()
            .map(|(i, n)| self.notify(i, n))
            .collect::<Result<_, _>>()?;

        Ok(Config {
            name: project.name.into_inner(),
            base,
            workflow,
            follow_releases,
            services,
            environments,
            registry,
            server,
            notify,
        })
    }

    fn server(&self, raw: Spanned<RawServer>) -> Result<Server, ConfigError> {
        let raw = raw.into_inner();
        let listen = match &raw.listen {
            None => std::net::SocketAddr::from(([127, 0, 0, 1], 8000)),
            Some(listen) => listen.get_ref().parse().map_err(|_| {
                self.error(
                    "server.listen",
                    listen.span(),
                    format!(
                        "`{}` is not an address to listen on; write it like \"127.0.0.1:8000\"",
                        listen.get_ref()
                    ),
                )
            })?,
        };
        let path = |key: &str, v: &Spanned<String>| {
            if v.get_ref().trim().is_empty() {
                Err(self.error(key, v.span(), "the path is empty"))
            } else {
                Ok(std::path::PathBuf::from(v.get_ref()))
            }
        };
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Tls {
                cert: path("server.tls_cert", cert)?,
                key: path("server.tls_key", key)?,
            }),
            (Some(given), None) | (None, Some(given)) => {
                let (has, lacks) = if raw.tls_cert.is_some() {
                    ("server.tls_cert", "tls_key")
                } else {
                    ("server.tls_key", "tls_cert")
                };
                return Err(self.error(
                    has,
                    given.span(),
                    format!("https needs both tls_cert and tls_key; add `{lacks}`, or remove both to serve plain http"),
                ));
            }
        };
        let url = match &raw.url {
            None => None,
            Some(url) => Some(public_origin(url.get_ref()).ok_or_else(|| {
                self.error(
                    "server.url",
                    url.span(),
                    format!(
                        "`{}` is not where users reach the server; write its origin like \"https://hifi.example.com\" (scheme, host and port only)",
                        url.get_ref()
                    ),
                )
            })?),
        };
        Ok(Server { listen, tls, url })
    }

    fn notify(&self, i: usize, raw: Spanned<RawNotify>) -> Result<Notify, ConfigError> {
        let key = |field: &str| format!("notify[{i}].{field}");
        let raw = raw.into_inner();
        let url = raw.url.get_ref().trim().to_string();
        let interpolated = url.contains("${");
        if interpolated {
            // Checked for shape now; resolved from hifi's environment only
            // when delivering, so the secret in it is never stored.
            super::interpolate(&url, |_| Some(String::new()))
                .map_err(|m| self.error(key("url"), raw.url.span(), m))?;
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(self.error(
                key("url"),
                raw.url.span(),
                format!("`{url}` is not an http:// or https:// URL (or a `${{VAR}}` holding one)"),
            ));
        }
        let format = match raw
            .format
            .as_ref()
            .map(|f| (f.get_ref().as_str(), f.span()))
        {
            None | Some(("json", _)) => NotifyFormat::Json,
            Some(("slack", _)) => NotifyFormat::Slack,
            Some((other, span)) => {
                return Err(self.error(
                    key("format"),
                    span,
                    format!("unknown format `{other}`; use \"json\" or \"slack\""),
                ));
            }
        };
        let events = match &raw.events {
            None => vec![crate::notify::EventPattern::any()],
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(self.error(
                        key("events"),
                        list.span(),
                        "events names at least one pattern, e.g. [\"deployment.*\"] (or leave it out for every event)",
                    ));
                }
                list.get_ref()
                    .iter()
                    .map(|p| p.parse())
                    .collect::<Result<_, String>>()
                    .map_err(|m| self.error(key("events"), list.span(), m))?
            }
        };
        let secret = match raw.secret {
            None => None,
            Some(secret) if format == NotifyFormat::Slack => {
                return Err(self.error(
                    key("secret"),
                    secret.span(),
                    "a secret signs json bodies; slack messages are not signed, so remove it or use format = \"json\"",
                ));
            }
            Some(secret) => {
                if secret.get_ref().contains("${") {
                    super::interpolate(secret.get_ref(), |_| Some(String::new()))
                        .map_err(|m| self.error(key("secret"), secret.span(), m))?;
                }
                Some(secret.into_inner()).filter(|s| !s.is_empty())
            }
        };
        Ok(Notify {
            url,
            format,
            events,
            secret,
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
            let image = raw
                .image
                .map(|image| {
                    normalize_path(image.get_ref())
                        .map_err(|m| self.error(key("image"), image.span(), m))
                })
                .transpose()?;
            let replicas = match raw.replicas {
                None => 1,
                Some(n) => u16::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| (1..=MAX_REPLICAS).contains(n))
                    .ok_or_else(|| {
                        self.error(
                            key("replicas"),
                            n.span(),
                            format!("replicas is a number from 1 to {MAX_REPLICAS}"),
                        )
                    })?,
            };
            let protocol = match &raw.protocol {
                None => Protocol::Http1,
                Some(p) => p.get_ref().parse::<Protocol>().map_err(|_| {
                    self.error(
                        key("protocol"),
                        p.span(),
                        format!(
                            "unknown protocol `{}`; use \"http1\", \"h2c\" (HTTP/2 without TLS) or \"grpc\"",
                            p.get_ref()
                        ),
                    )
                })?,
            };
            let request_timeout = match raw.request_timeout {
                None => None,
                Some(t) => {
                    let span = t.span();
                    let value = duration::parse(t.get_ref())
                        .map_err(|m| self.error(key("request_timeout"), span.clone(), m))?;
                    if !REQUEST_TIMEOUT.contains(&value) {
                        return Err(self.error(
                            key("request_timeout"),
                            span,
                            format!(
                                "request_timeout is a duration from {} to {}",
                                duration::Human(*REQUEST_TIMEOUT.start()),
                                duration::Human(*REQUEST_TIMEOUT.end())
                            ),
                        ));
                    }
                    Some(value)
                }
            };
            services.push(Service {
                name,
                path,
                build: raw.build.filter(|b| !b.trim().is_empty()),
                run: raw.run.into_inner(),
                health: raw.health.into_inner(),
                route,
                image,
                replicas,
                protocol,
                request_timeout,
            });
        }
        Ok(services)
    }

    fn environments(
        &self,
        raw: Vec<Spanned<RawEnvironment>>,
        context: &Context<'_>,
    ) -> Result<Vec<Environment>, ConfigError> {
        let Context {
            workflow,
            default_runtime,
            services,
            ..
        } = *context;
        let mut envs: Vec<Environment> = Vec::new();
        let mut ports: HashMap<u16, String> = HashMap::new();
        // Names other environments refer to (promote_from, hotfix_of),
        // checked once every name is known: (index, key, names, span).
        let mut references: Vec<(usize, &'static str, Vec<String>, Range<usize>)> = Vec::new();
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
            let given: Vec<(&str, Range<usize>)> = [
                raw.cards_from.as_ref().map(|v| ("cards_from", v.span())),
                raw.promote_from
                    .as_ref()
                    .map(|v| ("promote_from", v.span())),
                raw.hotfix_of.as_ref().map(|v| ("hotfix_of", v.span())),
            ]
            .into_iter()
            .flatten()
            .collect();
            if given.len() > 1 {
                return Err(self.error(
                    key(given[0].0),
                    given[0].1.clone(),
                    format!(
                        "environment `{name}` has both `{}` and `{}`; keep one",
                        given[0].0, given[1].0
                    ),
                ));
            }
            let origin = if let Some(stage) = &raw.cards_from {
                Origin::Cards(
                    workflow
                        .resolve(stage.get_ref())
                        .map_err(|m| self.error(key("cards_from"), stage.span(), m))?,
                )
            } else if let Some(from) = &raw.promote_from {
                let sources = from.get_ref().clone().into_vec();
                if sources.is_empty() {
                    return Err(self.error(
                        key("promote_from"),
                        from.span(),
                        "promote_from names at least one environment",
                    ));
                }
                references.push((i, "promote_from", sources.clone(), from.span()));
                Origin::Promote(sources)
            } else if let Some(target) = &raw.hotfix_of {
                references.push((
                    i,
                    "hotfix_of",
                    vec![target.get_ref().clone()],
                    target.span(),
                ));
                Origin::Hotfix(target.get_ref().clone())
            } else {
                return Err(self.error(
                    key("name"),
                    env_span,
                    format!("environment `{name}` needs `cards_from` (compose it from cards), `promote_from` (take releases verified elsewhere) or `hotfix_of` (compose fixes onto another environment's live release)"),
                ));
            };
            let mut windows = Vec::with_capacity(raw.windows.len());
            for (w, window) in raw.windows.iter().enumerate() {
                windows.push(
                    window
                        .get_ref()
                        .parse::<crate::window::Window>()
                        .map_err(|m| {
                            self.error(format!("{}[{w}]", key("windows")), window.span(), m)
                        })?,
                );
            }
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
            let four_eyes = raw.four_eyes.unwrap_or(false);
            let approvals = match &raw.approvals {
                // Four-eyes alone means: someone else must sign off.
                None if four_eyes => 1,
                None => 0,
                Some(v) if four_eyes && *v.get_ref() == 0 => {
                    return Err(self.error(
                        key("approvals"),
                        v.span(),
                        "four_eyes counts sign-offs by someone other than the deployer; it needs approvals = 1 or more",
                    ));
                }
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
            let runtime = self.runtime(&key("runtime"), raw.runtime.as_ref(), default_runtime)?;
            if runtime.runs_images()
                && let Some(service) = services.iter().find(|s| s.image.is_none())
            {
                let (at, span) = match &raw.runtime {
                    Some(r) => (key("runtime"), r.span()),
                    None => (key("name"), raw.name.span()),
                };
                return Err(self.error(
                    at,
                    span,
                    format!(
                        "environment `{name}` runs containers ({runtime}), but service `{}` has no `image`; give it one (a Dockerfile relative to {})",
                        service.name, service.path
                    ),
                ));
            }
            let runtime_at = match (&raw.runtime, &context.project_runtime_span) {
                (Some(r), _) => (key("runtime"), r.span()),
                (None, Some(span)) => ("project.runtime".to_owned(), span.clone()),
                (None, None) => (key("name"), raw.name.span()),
            };
            let kubernetes = self.kubernetes(
                i,
                context.project,
                &name,
                runtime,
                runtime_at,
                raw.kubernetes,
                context.registry,
                services,
            )?;
            if let Some(k8s) = &kubernetes
                && let Some(other) = envs.iter().find(|e| {
                    e.kubernetes
                        .as_ref()
                        .is_some_and(|o| o.namespace == k8s.namespace && o.context == k8s.context)
                })
            {
                // Their objects have the same names (`<service>-<slot>`,
                // `hifi-proxy`, `hifi-routing`): one would overwrite the
                // other's.
                return Err(self.error(
                    key("kubernetes"),
                    env_span.clone(),
                    format!(
                        "environments `{}` and `{name}` both run in namespace `{}` of the same cluster; give each its own (`[environment.kubernetes] namespace`)",
                        other.name, k8s.namespace
                    ),
                ));
            }
            if kubernetes.is_some() {
                // Neither reaches the cluster yet: a smoke command runs on
                // this machine, and a preview token would have to sit in
                // the routing ConfigMap. Said now rather than at a deploy.
                let unsupported = [
                    (
                        "smoke",
                        raw.smoke.as_deref().is_some_and(|s| !s.trim().is_empty()),
                    ),
                    (
                        "preview_token",
                        raw.preview_token.as_deref().is_some_and(|t| !t.is_empty()),
                    ),
                ];
                if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
                    return Err(self.error(
                        key(field),
                        raw.name.span(),
                        format!("environment `{name}` runs on Kubernetes, where `{field}` is not supported yet; remove it"),
                    ));
                }
            }
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
                four_eyes,
                user_key,
                preview_token: raw.preview_token.filter(|t| !t.is_empty()),
                canary,
                runtime,
                kubernetes,
                windows,
                vars,
            });
        }

        let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
        for (i, field, targets, span) in &references {
            let key = format!("environment[{i}].{field}");
            for target in targets {
                if !names.contains(&target.as_str()) {
                    return Err(self.error(
                        key,
                        span.clone(),
                        format!(
                            "`{target}` names no environment; hifi.toml defines: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
            if *field == "hotfix_of" {
                let target = &targets[0];
                if *target == envs[*i].name {
                    return Err(self.error(
                        key,
                        span.clone(),
                        format!("environment `{target}` cannot fix itself; name the environment whose live release it fixes, e.g. prod"),
                    ));
                }
                if envs
                    .iter()
                    .any(|e| &e.name == target && e.hotfix_of().is_some())
                {
                    return Err(self.error(
                        key,
                        span.clone(),
                        format!("`{target}` is itself a hotfix environment; a hotfix environment fixes one that runs releases, e.g. prod"),
                    ));
                }
            }
        }
        // A promotion cycle: walking promote_from from an environment comes
        // back to one already on the path.
        for (i, field, _, span) in &references {
            if *field != "promote_from" {
                continue;
            }
            let mut path = vec![envs[*i].name.as_str()];
            if let Some(cycle) = promotion_cycle(&envs, &mut path) {
                return Err(self.error(
                    format!("environment[{i}].promote_from"),
                    span.clone(),
                    format!("promote_from forms a cycle: {}; one environment of the chain must use `cards_from`", cycle.join(" -> ")),
                ));
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
        let ratio = |field: &str, v: Option<Spanned<f64>>, default: f64, what: &str| match v {
            None => Ok(default),
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(self.error(format!("{key}.{field}"), v.span(), what)),
        };
        let max_error_rate = ratio(
            "max_error_rate",
            raw.max_error_rate,
            defaults.max_error_rate,
            "max_error_rate is a ratio from 0 to 1 (0.01 means 1 %)",
        )?;
        let max_error_rate_increase = ratio(
            "max_error_rate_increase",
            raw.max_error_rate_increase,
            defaults.max_error_rate_increase,
            "max_error_rate_increase is a ratio from 0 to 1 (0.01 means one percentage point above the stable slot)",
        )?;
        let max_p99_increase = match raw.max_p99_increase {
            None => defaults.max_p99_increase,
            Some(v) if *v.get_ref() >= 0.0 && v.get_ref().is_finite() => *v.get_ref(),
            Some(v) => {
                return Err(self.error(
                    format!("{key}.max_p99_increase"),
                    v.span(),
                    "max_p99_increase is a fraction of the stable slot's p99, 0 or more (0.5 means half again as slow)",
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
            max_extensions: u32::try_from(non_negative(
                "max_extensions",
                raw.max_extensions,
                u64::from(defaults.max_extensions),
            )?)
            .unwrap_or(u32::MAX),
            compare: raw.compare.unwrap_or(defaults.compare),
            max_error_rate_increase,
            max_p99_increase,
        })
    }
}

/// What every environment is validated against.
struct Context<'a> {
    project: &'a str,
    workflow: &'a Workflow,
    default_runtime: RuntimeKind,
    project_runtime_span: Option<Range<usize>>,
    services: &'a [Service],
    registry: Option<&'a Registry>,
}

/// The name of an environment's proxy objects in its cluster.
const PROXY_NAME: &str = "hifi-proxy";

/// An RFC 1123 label: what Kubernetes accepts as a namespace name.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
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

/// A promotion cycle reachable from the last environment of `path`, as the
/// environments along it (the first repeated at the end).
fn promotion_cycle<'a>(envs: &'a [Environment], path: &mut Vec<&'a str>) -> Option<Vec<String>> {
    let current = *path.last()?;
    let env = envs.iter().find(|e| e.name == current)?;
    for next in env.promote_from() {
        if path.contains(&next.as_str()) {
            let mut cycle: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            cycle.push(next.clone());
            return Some(cycle);
        }
        path.push(next);
        if let Some(cycle) = promotion_cycle(envs, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

/// `text` as an origin (`scheme://host[:port]`, lowercase; a trailing `/`
/// dropped), or `None` when it is not one (another scheme, a path, a
/// query, credentials, no host).
fn public_origin(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))?;
    let clean = !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && !rest.starts_with(':')
        && rest.rsplit_once(':').is_none_or(|(host, port)| {
            !host.is_empty() && (host.ends_with(']') || port.parse::<u16>().is_ok())
        });
    clean.then_some(text)
}
