//! An environment whose data plane runs in its cluster (Kubernetes): the
//! routing table as the in-cluster proxy reads it, and the proxy replicas'
//! figures summed into one for the canary judge.
//!
//! The table is the one [`crate::table::build`] makes, with the cluster's
//! listeners (`0.0.0.0`, fixed ports) and each slot's backend named by its
//! Service (`catalog-green:80`), so it never holds an address that changes
//! when a pod does. Every proxy replica counts only the requests it served;
//! the controller asks each through the API server and adds them up. A
//! replica that does not answer fails the reading, so a canary is never
//! judged on part of its traffic.

use hifi_core::{Environment, Routing, Service};
use hifi_proxy::{Inflight, Stats, StatsQuery, TableSpec};
use hifi_runtime::kubernetes::ProxyPlane;
use hifi_runtime::kubernetes::objects::{
    PROXY_PREVIEW_PORT, PROXY_PUBLIC_PORT, internal_port, slot_backend,
};

use crate::error::{Error, Result};
use crate::plan::Running;
use crate::table;

/// The table of `env` as its in-cluster proxy serves it, or `None` when it
/// serves nothing yet.
pub fn table(
    env: &Environment,
    services: &[Service],
    routing: &Routing,
    instances: &[Running],
) -> Option<TableSpec> {
    // The local build decides who serves what; only the addresses differ.
    let ports = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), internal_port(i)))
        .chain([(table::PREVIEW.to_owned(), PROXY_PREVIEW_PORT)])
        .collect();
    let inputs = table::Inputs {
        env,
        services,
        routing,
        instances,
        internal_ports: &ports,
        // A ConfigMap is no place for a secret: Kubernetes environments
        // have none (the config refuses `preview_token` there).
        preview_token: None,
        // Every service on Kubernetes speaks HTTP/1.1 (the config refuses
        // others there), so no release needs asking.
        releases: &[],
    };
    let mut spec = table::build(&inputs)?;
    spec.listen = format!("0.0.0.0:{PROXY_PUBLIC_PORT}");
    spec.preview_listen = Some(format!("0.0.0.0:{PROXY_PREVIEW_PORT}"));
    for service in &mut spec.services {
        let index = services
            .iter()
            .position(|s| s.name == service.name)
            .unwrap_or_default();
        service.internal_listen = format!("0.0.0.0:{}", internal_port(index));
        service.active.backends = vec![slot_backend(&service.name, &service.active.slot)];
        if let Some(candidate) = &mut service.candidate {
            candidate.backends = vec![slot_backend(&service.name, &candidate.slot)];
        }
        if let Some(standby) = &mut service.standby {
            standby.backends = vec![slot_backend(&service.name, &standby.slot)];
        }
    }
    Some(spec)
}

/// The table as the ConfigMap holds it: pretty JSON, so `kubectl get -o
/// yaml` and `hifi manifests` are readable.
pub fn table_json(spec: &TableSpec) -> Result<String> {
    serde_json::to_string_pretty(spec)
        .map_err(|e| Error::Other(format!("cannot write the routing table: {e}")))
}

/// What every running proxy replica answered to `path`, parsed; fails when
/// none runs or one does not answer.
async fn ask_all<T: serde::de::DeserializeOwned>(plane: &ProxyPlane, path: &str) -> Result<Vec<T>> {
    let answers = plane.ask_pods(path).await?;
    let namespace = &plane.target().namespace;
    if answers.is_empty() {
        return Err(Error::Other(format!(
            "no hifi-proxy pod runs in namespace {namespace}, so there are no figures to read"
        )));
    }
    let mut parsed = Vec::with_capacity(answers.len());
    for answer in answers {
        let pod = &answer.pod;
        let (code, body) = answer.answer.map_err(|reason| {
            Error::Other(format!(
                "proxy pod {namespace}/{pod} did not answer {path}: {reason}"
            ))
        })?;
        if !(200..300).contains(&code) {
            return Err(Error::Other(format!(
                "proxy pod {namespace}/{pod} answered {code} to {path}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        parsed.push(serde_json::from_slice(&body).map_err(|e| {
            Error::Other(format!(
                "proxy pod {namespace}/{pod} answered {path} with what is not its figures: {e}"
            ))
        })?);
    }
    Ok(parsed)
}

/// The slot's figures over every proxy replica.
pub async fn stats(plane: &ProxyPlane, query: &StatsQuery) -> Result<Stats> {
    let mut path = format!(
        "/stats?env={}&slot={}&since_ms={}",
        query.env, query.slot, query.since_ms
    );
    if let Some(service) = &query.service {
        path.push_str(&format!("&service={service}"));
    }
    if let Some(ms) = query.slow_ms {
        path.push_str(&format!("&slow_ms={ms}"));
    }
    let each: Vec<Stats> = ask_all(plane, &path).await?;
    Ok(sum(query, &each))
}

/// Adds up the figures of several proxies. Counts add; the quantiles of
/// the whole are not known from the parts, so the highest of the parts is
/// taken — never below the true one (a mixture's quantile is at most its
/// parts' highest), so a canary is never judged kinder than it was.
pub fn sum(query: &StatsQuery, each: &[Stats]) -> Stats {
    let total = |f: fn(&Stats) -> u64| each.iter().map(f).sum::<u64>();
    let highest = |f: fn(&Stats) -> Option<f64>| {
        each.iter()
            .filter(|s| s.requests > 0)
            .filter_map(f)
            .fold(None, |max: Option<f64>, v| {
                Some(max.map_or(v, |m| m.max(v)))
            })
    };
    let requests = total(|s| s.requests);
    let errors = total(|s| s.errors);
    Stats {
        env: query.env.clone(),
        slot: query.slot.clone(),
        service: query.service.clone(),
        since_ms: query.since_ms,
        requests,
        errors,
        error_ratio: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        p50_ms: highest(|s| s.p50_ms),
        p99_ms: highest(|s| s.p99_ms),
        client_closed: total(|s| s.client_closed),
        bad_requests: total(|s| s.bad_requests),
        abandoned: total(|s| s.abandoned),
        abandoned_slow: total(|s| s.abandoned_slow),
    }
}

/// What still runs on the slot, over every proxy replica.
pub async fn inflight(plane: &ProxyPlane, env: &str, slot: &str) -> Result<Inflight> {
    let each: Vec<Inflight> = ask_all(plane, &format!("/inflight?env={env}&slot={slot}")).await?;
    Ok(Inflight {
        env: env.to_owned(),
        slot: slot.to_owned(),
        service: None,
        requests: each.iter().map(|i| i.requests).sum(),
        upgraded: each.iter().map(|i| i.upgraded).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(requests: u64, errors: u64, p99: Option<f64>) -> Stats {
        Stats {
            env: "prod".into(),
            slot: "green".into(),
            service: None,
            since_ms: 0,
            requests,
            errors,
            error_ratio: 0.0,
            p50_ms: p99.map(|p| p / 2.0),
            p99_ms: p99,
            client_closed: 1,
            bad_requests: 0,
            abandoned: 0,
            abandoned_slow: 0,
        }
    }

    #[test]
    fn replicas_figures_add_up_and_the_slowest_quantile_stands() {
        let query = StatsQuery {
            env: "prod".into(),
            slot: "green".into(),
            service: None,
            since_ms: 0,
            slow_ms: None,
        };
        let total = sum(
            &query,
            &[
                stats(90, 1, Some(12.0)),
                stats(10, 9, Some(480.0)),
                stats(0, 0, Some(9000.0)),
            ],
        );
        assert_eq!(
            (total.requests, total.errors, total.client_closed),
            (100, 10, 3)
        );
        assert!((total.error_ratio - 0.1).abs() < 1e-9);
        assert_eq!(
            total.p99_ms,
            Some(480.0),
            "a replica that served nothing has no say"
        );
        assert_eq!(sum(&query, &[stats(0, 0, None)]).error_ratio, 0.0);
    }
}
