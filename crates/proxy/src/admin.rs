//! The admin interface: HTTP/1.1 with JSON on a unix socket, never on a
//! public listener. Only local processes with access to the socket file
//! (created with mode 0600) can change routing.
//!
//! | method | path | body / query | answer |
//! |---|---|---|---|
//! | GET | `/tables` | | `["prod", …]` |
//! | PUT | `/tables/{env}` | a [`TableSpec`](crate::TableSpec) | `{"env": "prod", "applied": true}` |
//! | GET | `/tables/{env}` | | the table, or 404 |
//! | DELETE | `/tables/{env}` | | `{"env": "prod", "removed": true}`, or 404 |
//! | GET | `/health` | `env=E` | `[`[`BackendReport`](crate::BackendReport)`, …]` |
//! | GET | `/stats` | `env=E&slot=S[&service=X][&since_ms=T]` | [`Stats`](crate::Stats) |
//! | GET | `/inflight` | `env=E&slot=S[&service=X]` | [`Inflight`](crate::Inflight) |
//! | POST | `/drain` | a [`DrainRequest`](crate::DrainRequest) | [`DrainAnswer`](crate::DrainAnswer) |
//! | GET | `/metrics` | | Prometheus text |
//!
//! Errors are `{"error": "message"}` with 400 (refused input; the live table
//! is untouched), 404, 405, 409 (a listener address is taken by another
//! process) or 500.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixListener;

use crate::control::{Control, DrainRequest, status_of};
use crate::metrics::StatsQuery;
use crate::table::TableSpec;

/// Largest admin request body accepted (a table is a few kilobytes).
const MAX_BODY: usize = 1 << 20;

type AdminResponse = Response<Full<Bytes>>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> AdminResponse {
    let body = serde_json::to_vec(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode answer: {e}\"}}").into_bytes());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: u16, message: impl Into<String>) -> AdminResponse {
    json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &serde_json::json!({ "error": message.into() }),
    )
}

/// Parse `a=1&b=2` into pairs (names and values here never need decoding:
/// they are restricted to `[a-z0-9_-]` and digits).
fn query(q: Option<&str>) -> Vec<(&str, &str)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

fn param<'a>(q: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// A required query parameter; the error is the message of a 400.
fn required<'a>(q: &[(&str, &'a str)], name: &str) -> Result<&'a str, String> {
    param(q, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("query parameter {name} is required"))
}

/// The request body, at most `MAX_BODY`; the error is the message of a 400.
async fn body(req: Request<Incoming>) -> Result<Bytes, String> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(format!("cannot read request body: {e}")),
    }
}

async fn route(control: &Arc<Control>, req: Request<Incoming>) -> AdminResponse {
    let path = req.uri().path().to_owned();
    let q_owned = req.uri().query().map(str::to_owned);
    let q = query(q_owned.as_deref());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["tables"]) => json(StatusCode::OK, &control.env_names().await),
        (&Method::PUT, ["tables", env]) => {
            let env = (*env).to_owned();
            let bytes = match body(req).await {
                Ok(b) => b,
                Err(m) => return error(400, m),
            };
            let spec = match TableSpec::from_json(&bytes) {
                Ok(s) => s,
                Err(e) => return error(400, e.to_string()),
            };
            if spec.env != env {
                return error(
                    400,
                    format!(
                        "invalid routing table: the path names environment {env:?} but the table is for {:?}",
                        spec.env
                    ),
                );
            }
            match control.apply(spec, true).await {
                Ok(()) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "env": env, "applied": true }),
                ),
                Err(e) => {
                    tracing::warn!(%env, error = %e, "routing table refused");
                    error(status_of(&e), e.to_string())
                }
            }
        }
        (&Method::GET, ["tables", env]) => match control.table(env).await {
            Some(t) => json(StatusCode::OK, &t),
            None => error(404, format!("no routing table for environment {env}")),
        },
        (&Method::DELETE, ["tables", env]) => match control.remove(env).await {
            Ok(true) => json(
                StatusCode::OK,
                &serde_json::json!({ "env": env, "removed": true }),
            ),
            Ok(false) => error(404, format!("no routing table for environment {env}")),
            Err(e) => error(status_of(&e), e.to_string()),
        },
        (&Method::GET, ["health"]) => {
            let env = match required(&q, "env") {
                Ok(e) => e,
                Err(m) => return error(400, m),
            };
            match control.health_report(env).await {
                Some(r) => json(StatusCode::OK, &r),
                None => error(404, format!("no routing table for environment {env}")),
            }
        }
        (&Method::GET, ["stats"]) => {
            let (env, slot) = match (required(&q, "env"), required(&q, "slot")) {
                (Ok(e), Ok(s)) => (e, s),
                (Err(m), _) | (_, Err(m)) => return error(400, m),
            };
            let since_ms = match param(&q, "since_ms").map(str::parse::<u64>) {
                None => 0,
                Some(Ok(v)) => v,
                Some(Err(_)) => return error(400, "since_ms must be unix milliseconds"),
            };
            let query = StatsQuery {
                env: env.to_owned(),
                slot: slot.to_owned(),
                service: param(&q, "service").map(str::to_owned),
                since_ms,
            };
            json(StatusCode::OK, &control.stats(&query))
        }
        (&Method::GET, ["inflight"]) => {
            let (env, slot) = match (required(&q, "env"), required(&q, "slot")) {
                (Ok(e), Ok(s)) => (e, s),
                (Err(m), _) | (_, Err(m)) => return error(400, m),
            };
            json(
                StatusCode::OK,
                &control.inflight(env, slot, param(&q, "service")),
            )
        }
        (&Method::POST, ["drain"]) => {
            let bytes = match body(req).await {
                Ok(b) => b,
                Err(m) => return error(400, m),
            };
            let drain: DrainRequest = match serde_json::from_slice(&bytes) {
                Ok(d) => d,
                Err(e) => return error(400, format!("drain request JSON: {e}")),
            };
            match control.drain(drain).await {
                Ok(a) => json(StatusCode::OK, &a),
                Err(e) => error(status_of(&e), e.to_string()),
            }
        }
        (&Method::GET, ["metrics"]) => {
            let mut r = Response::new(Full::new(Bytes::from(control.metrics_text().await)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (
            _,
            ["tables"]
            | ["tables", _]
            | ["health"]
            | ["stats"]
            | ["inflight"]
            | ["drain"]
            | ["metrics"],
        ) => error(405, format!("{method} is not allowed on {path}")),
        _ => error(404, format!("no admin endpoint {path}")),
    }
}

/// Serve the admin socket until `control.shutdown` is cancelled.
pub(crate) async fn serve(listener: UnixListener, control: Arc<Control>) {
    loop {
        let stream = tokio::select! {
            _ = control.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let control = control.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let control = control.clone();
                async move { Ok::<_, Infallible>(route(&control, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}
