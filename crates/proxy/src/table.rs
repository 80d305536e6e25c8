//! The routing table of one environment: its JSON shape and its validation.
//!
//! [`TableSpec`] is what the control plane sends and what is persisted; it is
//! deliberately strict (`deny_unknown_fields`, every address parsed, every name
//! checked) so that a typo is refused with a message instead of silently
//! routing traffic somewhere unexpected. [`TableSpec::validate`] turns it into
//! a [`ValidTable`] whose addresses are parsed; compiling that into the
//! request-path structures happens in `compiled`.

use std::collections::HashSet;
use std::net::SocketAddr;

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default user key: the `hifi-user` cookie, which the proxy sets itself.
pub const DEFAULT_USER_KEY: &str = "cookie:hifi-user";

/// The routing table of one environment, as sent to `PUT /tables/{env}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Environment name (`[a-z0-9][a-z0-9_-]*`, at most 63 characters).
    pub env: String,
    /// Public listener, `IP:PORT` (port not 0).
    pub listen: String,
    /// Sticky user key: `cookie:NAME` or `header:NAME`, NAME being ASCII
    /// letters, digits, `-` and `_` (read by [`hifi_core::UserKey`]).
    #[serde(default = "default_user_key")]
    pub user_key: String,
    /// When set, `x-hifi-slot: candidate` on the public listener also needs
    /// `x-hifi-preview-token: <token>`.
    #[serde(default)]
    pub preview_token: Option<String>,
    /// Optional preview listener, `IP:PORT`: routes like `listen`, but every
    /// request goes to the candidate where a service has one (and to the
    /// active slot where it has none), with no token asked. It is how a
    /// smoke check reaches a release before any user does; bind it to
    /// loopback.
    #[serde(default)]
    pub preview_listen: Option<String>,
    /// The services of the environment.
    pub services: Vec<ServiceSpec>,
}

fn default_user_key() -> String {
    DEFAULT_USER_KEY.to_owned()
}

fn default_health() -> String {
    "/healthz".to_owned()
}

/// One service of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name (`[a-z0-9][a-z0-9_-]*`).
    pub name: String,
    /// Path prefix on the public listener; `/` is the catch-all. Matching is
    /// on path-segment boundaries and the path is forwarded unchanged.
    pub route: String,
    /// Optional host name (without port) the route is restricted to.
    #[serde(default)]
    pub host: Option<String>,
    /// Stable internal listener for service-to-service calls, `IP:PORT`.
    pub internal_listen: String,
    /// Health path probed on every backend (default `/healthz`).
    #[serde(default = "default_health")]
    pub health: String,
    /// The slot serving users.
    pub active: SlotSpec,
    /// The slot being rolled out, with its share of users.
    #[serde(default)]
    pub candidate: Option<CandidateSpec>,
    /// The previous slot, kept warm for rollback; only reachable through
    /// `x-hifi-slot` on the internal listener.
    #[serde(default)]
    pub standby: Option<SlotSpec>,
    /// What the backends speak: `http1` (default), `h2c` (HTTP/2 without
    /// TLS, prior knowledge) or `grpc` (h2c, and a non-zero `grpc-status`
    /// counts as an error of the slot). Omitted from the JSON when `http1`.
    #[serde(default, skip_serializing_if = "Protocol::is_http1")]
    pub protocol: Protocol,
    /// Time the backend has to send response headers, in milliseconds,
    /// counted once the request (body included) has been sent; overrides
    /// [`ProxyOptions::upstream_timeout`](crate::ProxyOptions) for this
    /// service. 0 or absent: the proxy-wide default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
}

/// The protocol a service's backends speak: hifi's own
/// [`hifi_core::Protocol`], named in tables as in `hifi.toml` (`http1`,
/// `h2c`, `grpc`).
pub use hifi_core::Protocol;

/// A slot: a name (`blue`, `green`, …) and its backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    /// Slot name, sent to backends in `x-hifi-slot`.
    pub slot: String,
    /// Backend addresses, `IP:PORT`; at least one.
    pub backends: Vec<String>,
    /// What this slot's backends speak, when it is not the service's
    /// `protocol`: during a rollout between releases that speak different
    /// protocols each slot is spoken to in its own. Absent: the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// The candidate slot and the percentage of users it receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateSpec {
    /// Slot name.
    pub slot: String,
    /// Backend addresses, `IP:PORT`; at least one.
    pub backends: Vec<String>,
    /// Percentage of users (0–100, fractions allowed down to 0.01).
    pub weight: f64,
    /// What this slot's backends speak, when it is not the service's
    /// `protocol` (see [`SlotSpec::protocol`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// How the sticky user key is read from a request: the compiled form of a
/// [`hifi_core::UserKey`], holding the header name ready for header-map
/// lookups on the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// A cookie of this name.
    Cookie(String),
    /// A header of this name (lower case); falls back to the `hifi-user`
    /// cookie when the header is absent.
    Header(http::HeaderName),
}

impl TryFrom<hifi_core::UserKey> for UserKey {
    type Error = http::header::InvalidHeaderName;

    fn try_from(key: hifi_core::UserKey) -> std::result::Result<Self, Self::Error> {
        Ok(match key {
            hifi_core::UserKey::Cookie(name) => UserKey::Cookie(name),
            hifi_core::UserKey::Header(name) => {
                UserKey::Header(http::HeaderName::from_bytes(name.as_bytes())?)
            }
        })
    }
}

/// A table whose fields have been checked and whose addresses are parsed.
#[derive(Debug, Clone)]
pub struct ValidTable {
    /// The table as received (kept for `GET /tables/{env}` and persistence).
    pub spec: TableSpec,
    /// Parsed public listener.
    pub listen: SocketAddr,
    /// Parsed preview listener.
    pub preview_listen: Option<SocketAddr>,
    /// Parsed user key.
    pub user_key: UserKey,
    /// Parsed services, in table order.
    pub services: Vec<ValidService>,
}

/// A service whose addresses are parsed.
#[derive(Debug, Clone)]
pub struct ValidService {
    /// Service name.
    pub name: String,
    /// Normalised route (no trailing slash except for `/`).
    pub route: String,
    /// Lower-cased host, if any.
    pub host: Option<String>,
    /// Parsed internal listener.
    pub internal_listen: SocketAddr,
    /// Health path.
    pub health: String,
    /// Active slot.
    pub active: ValidSlot,
    /// Candidate slot and its threshold in basis points (0..=10000).
    pub candidate: Option<(ValidSlot, u32)>,
    /// Standby slot.
    pub standby: Option<ValidSlot>,
    /// Protocol of the backends.
    pub protocol: Protocol,
    /// Per-service response-header timeout, if set.
    pub request_timeout: Option<std::time::Duration>,
}

/// A slot whose backends are parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSlot {
    /// Slot name.
    pub name: String,
    /// Backends, in table order.
    pub backends: Vec<SocketAddr>,
    /// What they speak: the slot's own protocol, else the service's.
    pub protocol: Protocol,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidTable(msg.into())
}

/// Environment, service and slot names double as file names, metric labels
/// and header values, so they are kept to a conservative alphabet.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{kind} name {name:?} must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        )))
    }
}

fn parse_addr(field: &str, value: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = value.parse().map_err(|_| {
        invalid(format!(
            "{field}: {value:?} is not an IP:PORT address (host names are not resolved)"
        ))
    })?;
    if addr.port() == 0 {
        return Err(invalid(format!(
            "{field}: {value:?} needs a fixed port, not 0"
        )));
    }
    Ok(addr)
}

/// Two listener addresses clash when they share a port and either is the
/// same IP or a wildcard (binding both would fail or shadow each other).
pub(crate) fn addrs_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Read the table's `user_key` with the one parser of user keys
/// ([`hifi_core::UserKey`]'s `FromStr`) and compile it; a refusal is a
/// validation error of the table.
fn compile_user_key(value: &str) -> Result<UserKey> {
    let key: hifi_core::UserKey = value
        .parse()
        .map_err(|e: String| invalid(format!("user_key: {e}")))?;
    UserKey::try_from(key).map_err(|e| invalid(format!("user_key {value:?}: {e}")))
}

fn normalise_route(service: &str, route: &str) -> Result<String> {
    if !route.starts_with('/') || route.contains(['?', '#', ' ']) || route.contains("//") {
        return Err(invalid(format!(
            "service {service}: route {route:?} must be a path starting with '/' (no query, fragment, spaces or empty segments)"
        )));
    }
    let trimmed = route.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

fn valid_slot(
    service: &str,
    role: &str,
    slot: &str,
    backends: &[String],
    protocol: Protocol,
) -> Result<ValidSlot> {
    check_name("slot", slot).map_err(|e| invalid(format!("service {service} {role}: {e}")))?;
    if slot == "candidate" {
        return Err(invalid(format!(
            "service {service} {role}: slot name \"candidate\" is reserved for the tester override"
        )));
    }
    if backends.is_empty() {
        return Err(invalid(format!(
            "service {service} {role} slot {slot}: backends must not be empty"
        )));
    }
    let mut parsed = Vec::with_capacity(backends.len());
    for b in backends {
        let addr = parse_addr(&format!("service {service} {role} slot {slot} backend"), b)?;
        if parsed.contains(&addr) {
            return Err(invalid(format!(
                "service {service} {role} slot {slot}: backend {addr} is listed twice"
            )));
        }
        parsed.push(addr);
    }
    Ok(ValidSlot {
        name: slot.to_owned(),
        backends: parsed,
        protocol,
    })
}

impl TableSpec {
    /// Parse a table from JSON, refusing unknown fields.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("routing table JSON: {e}")))
    }

    /// Check every rule that does not depend on other environments.
    pub fn validate(&self) -> Result<ValidTable> {
        check_name("environment", &self.env)?;
        let listen = parse_addr("listen", &self.listen)?;
        let user_key = compile_user_key(&self.user_key)?;
        if let Some(tok) = &self.preview_token
            && (tok.is_empty() || HeaderValue::from_str(tok).is_err())
        {
            return Err(invalid(
                "preview_token must be a non-empty string of visible ASCII characters",
            ));
        }
        let mut names = HashSet::new();
        let mut addrs: Vec<(SocketAddr, String)> = vec![(listen, "listen".to_owned())];
        let preview_listen = match &self.preview_listen {
            None => None,
            Some(text) => {
                let addr = parse_addr("preview_listen", text)?;
                if addrs_clash(addr, listen) {
                    return Err(invalid(format!(
                        "preview_listen {addr} clashes with listen {listen}"
                    )));
                }
                addrs.push((addr, "preview_listen".to_owned()));
                Some(addr)
            }
        };
        let mut services = Vec::with_capacity(self.services.len());
        for s in &self.services {
            check_name("service", &s.name)?;
            if !names.insert(s.name.as_str()) {
                return Err(invalid(format!("service {} is listed twice", s.name)));
            }
            let route = normalise_route(&s.name, &s.route)?;
            let host = match &s.host {
                None => None,
                Some(h) => {
                    let ok = !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                    if !ok {
                        return Err(invalid(format!(
                            "service {}: host {h:?} must be a host name without port",
                            s.name
                        )));
                    }
                    Some(h.to_ascii_lowercase())
                }
            };
            if let Some(dup) = self.services.iter().find(|o| {
                o.name != s.name
                    && o.host.as_deref().map(str::to_ascii_lowercase) == host
                    && normalise_route(&o.name, &o.route).ok().as_deref() == Some(route.as_str())
            }) {
                return Err(invalid(format!(
                    "services {} and {} share the route {route}{}",
                    (&dup.name).min(&s.name),
                    (&dup.name).max(&s.name),
                    host.as_deref()
                        .map(|h| format!(" on host {h}"))
                        .unwrap_or_default()
                )));
            }
            let internal = parse_addr(
                &format!("service {} internal_listen", s.name),
                &s.internal_listen,
            )?;
            let label = format!("service {} internal_listen", s.name);
            if let Some((_, other)) = addrs.iter().find(|(a, _)| addrs_clash(*a, internal)) {
                return Err(invalid(format!(
                    "{label} {internal} clashes with {other} of environment {}",
                    self.env
                )));
            }
            addrs.push((internal, label));
            if !s.health.starts_with('/') || HeaderValue::from_str(&s.health).is_err() {
                return Err(invalid(format!(
                    "service {}: health {:?} must be a path starting with '/'",
                    s.name, s.health
                )));
            }
            let active = valid_slot(
                &s.name,
                "active",
                &s.active.slot,
                &s.active.backends,
                s.active.protocol.unwrap_or(s.protocol),
            )?;
            let candidate = match &s.candidate {
                None => None,
                Some(c) => {
                    if !c.weight.is_finite() || !(0.0..=100.0).contains(&c.weight) {
                        return Err(invalid(format!(
                            "service {} candidate weight {} must be between 0 and 100",
                            s.name, c.weight
                        )));
                    }
                    let slot = valid_slot(
                        &s.name,
                        "candidate",
                        &c.slot,
                        &c.backends,
                        c.protocol.unwrap_or(s.protocol),
                    )?;
                    // Basis points: 10.0 % => users whose bucket is < 1000.
                    Some((slot, (c.weight * 100.0).round() as u32))
                }
            };
            let standby = match &s.standby {
                None => None,
                Some(sb) => Some(valid_slot(
                    &s.name,
                    "standby",
                    &sb.slot,
                    &sb.backends,
                    sb.protocol.unwrap_or(s.protocol),
                )?),
            };
            let mut slot_names = vec![active.name.as_str()];
            for n in candidate
                .as_ref()
                .map(|(c, _)| c.name.as_str())
                .into_iter()
                .chain(standby.as_ref().map(|s| s.name.as_str()))
            {
                if slot_names.contains(&n) {
                    return Err(invalid(format!(
                        "service {}: slot {n} is used for two roles (active, candidate and standby must differ)",
                        s.name
                    )));
                }
                slot_names.push(n);
            }
            services.push(ValidService {
                name: s.name.clone(),
                route,
                host,
                internal_listen: internal,
                health: s.health.clone(),
                active,
                candidate,
                standby,
                protocol: s.protocol,
                request_timeout: s
                    .request_timeout_ms
                    .filter(|ms| *ms > 0)
                    .map(std::time::Duration::from_millis),
            });
        }
        Ok(ValidTable {
            spec: self.clone(),
            listen,
            preview_listen,
            user_key,
            services,
        })
    }
}

impl ValidTable {
    /// Every listener this table needs, with a label for error messages.
    pub fn listeners(&self) -> Vec<(SocketAddr, String)> {
        let mut v = vec![(
            self.listen,
            format!("listen of environment {}", self.spec.env),
        )];
        if let Some(preview) = self.preview_listen {
            v.push((
                preview,
                format!("preview_listen of environment {}", self.spec.env),
            ));
        }
        for s in &self.services {
            v.push((
                s.internal_listen,
                format!(
                    "internal_listen of service {} in environment {}",
                    s.name, self.spec.env
                ),
            ));
        }
        v
    }

    /// Refuse a table whose listeners clash with another environment's.
    pub fn check_against(&self, other: &ValidTable) -> Result<()> {
        for (a, label) in self.listeners() {
            for (b, other_label) in other.listeners() {
                if addrs_clash(a, b) {
                    return Err(invalid(format!(
                        "{label} {a} clashes with {other_label} {b}"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableSpec {
        TableSpec::from_json(
            br#"{"env":"prod","listen":"127.0.0.1:8500","services":[
              {"name":"catalog","route":"/catalog/","internal_listen":"127.0.0.1:18501",
               "active":{"slot":"blue","backends":["127.0.0.1:4001"]},
               "candidate":{"slot":"green","backends":["127.0.0.1:4002"],"weight":12.5}}]}"#,
        )
        .expect("parses")
    }

    #[test]
    fn defaults_and_normalisation() {
        let v = table().validate().expect("valid");
        assert_eq!(v.user_key, UserKey::Cookie("hifi-user".into()));
        assert_eq!(v.services[0].route, "/catalog");
        assert_eq!(v.services[0].health, "/healthz");
        assert_eq!(v.services[0].candidate.as_ref().map(|c| c.1), Some(1250));
    }

    #[test]
    fn refuses_bad_input_with_a_message() {
        let mut t = table();
        t.services[0].candidate.as_mut().expect("candidate").weight = 101.0;
        assert!(t.validate().unwrap_err().to_string().contains("weight"));
        let mut t = table();
        t.services[0].active.backends.clear();
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .contains("must not be empty")
        );
        let mut t = table();
        t.services[0].internal_listen = "127.0.0.1:8500".into();
        assert!(t.validate().unwrap_err().to_string().contains("clashes"));
        let mut t = table();
        t.user_key = "query:x".into();
        assert!(t.validate().is_err());
        let mut s = t.services[0].clone();
        s.name = "other".into();
        s.internal_listen = "127.0.0.1:18502".into();
        let mut t = table();
        t.services.push(s);
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .contains("share the route")
        );
        assert!(
            TableSpec::from_json(br#"{"env":"x","listen":"1.2.3.4:1","services":[],"extra":1}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }

    #[test]
    fn user_key_is_read_by_the_core_parser() {
        let mut t = table();
        t.user_key = "header:X-User".into();
        let v = t.validate().expect("valid");
        assert_eq!(
            v.user_key,
            UserKey::Header(http::HeaderName::from_static("x-user"))
        );
        for bad in ["query:x", "cookie:", "header:a.b", "hifi-user"] {
            let mut t = table();
            t.user_key = bad.into();
            let err = t.validate().unwrap_err();
            assert!(matches!(err, Error::InvalidTable(_)), "{bad}: {err}");
            assert!(err.to_string().contains("user_key"), "{bad}: {err}");
        }
    }
}
