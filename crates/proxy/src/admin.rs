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
//! | GET | `/stats` | `env=E&slot=S[&service=X][&since_ms=T][&slow_ms=L]` | [`Stats`](crate::Stats) |
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
use crate::error::Error;
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

/// A refused admin request: the status and message of its
/// `{"error": message}` answer.
struct Refusal {
    status: u16,
    message: String,
}

impl Refusal {
    /// 400: the request itself is wrong; nothing was changed.
    fn bad(message: impl Into<String>) -> Self {
        Refusal {
            status: 400,
            message: message.into(),
        }
    }

    /// 404: nothing by that name.
    fn not_found(message: impl Into<String>) -> Self {
        Refusal {
            status: 404,
            message: message.into(),
        }
    }

    /// The status the control side's error maps to.
    fn of(e: &Error) -> Self {
        Refusal {
            status: status_of(e),
            message: e.to_string(),
        }
    }

    /// The `{"error": message}` answer.
    fn answer(self) -> AdminResponse {
        json(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &serde_json::json!({ "error": self.message }),
        )
    }
}

/// What an endpoint handler returns.
type Handled = Result<AdminResponse, Refusal>;

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

/// A required query parameter; missing or empty is a 400.
fn required<'a>(q: &[(&str, &'a str)], name: &str) -> Result<&'a str, Refusal> {
    param(q, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal::bad(format!("query parameter {name} is required")))
}

/// The request body, at most `MAX_BODY`; unreadable or too large is a 400.
async fn body(req: Request<Incoming>) -> Result<Bytes, Refusal> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(Refusal::bad(format!("cannot read request body: {e}"))),
    }
}

fn no_table(env: &str) -> Refusal {
    Refusal::not_found(format!("no routing table for environment {env}"))
}

/// The required `env` and `slot` query parameters.
fn env_and_slot<'a>(q: &[(&str, &'a str)]) -> Result<(&'a str, &'a str), Refusal> {
    Ok((required(q, "env")?, required(q, "slot")?))
}

/// Dispatch an admin request to the handler of its (method, path).
async fn route(control: &Arc<Control>, req: Request<Incoming>) -> AdminResponse {
    let path = req.uri().path().to_owned();
    let q_owned = req.uri().query().map(str::to_owned);
    let q = query(q_owned.as_deref());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let handled = match (&method, segments.as_slice()) {
        (&Method::GET, ["tables"]) => list_tables(control).await,
        (&Method::PUT, ["tables", env]) => put_table(control, env, req).await,
        (&Method::GET, ["tables", env]) => get_table(control, env).await,
        (&Method::DELETE, ["tables", env]) => delete_table(control, env).await,
        (&Method::GET, ["health"]) => get_health(control, &q).await,
        (&Method::GET, ["stats"]) => get_stats(control, &q),
        (&Method::GET, ["inflight"]) => get_inflight(control, &q),
        (&Method::POST, ["drain"]) => post_drain(control, req).await,
        (&Method::GET, ["metrics"]) => get_metrics(control).await,
        (
            _,
            ["tables"]
            | ["tables", _]
            | ["health"]
            | ["stats"]
            | ["inflight"]
            | ["drain"]
            | ["metrics"],
        ) => Err(Refusal {
            status: 405,
            message: format!("{method} is not allowed on {path}"),
        }),
        _ => Err(Refusal::not_found(format!("no admin endpoint {path}"))),
    };
    handled.unwrap_or_else(Refusal::answer)
}

/// `GET /tables`: the environments with a table.
async fn list_tables(control: &Control) -> Handled {
    Ok(json(StatusCode::OK, &control.env_names().await))
}

/// `PUT /tables/{env}`: validate, apply and persist a whole table.
async fn put_table(control: &Control, env: &str, req: Request<Incoming>) -> Handled {
    let bytes = body(req).await?;
    let spec = TableSpec::from_json(&bytes).map_err(|e| Refusal::bad(e.to_string()))?;
    if spec.env != env {
        return Err(Refusal::bad(format!(
            "invalid routing table: the path names environment {env:?} but the table is for {:?}",
            spec.env
        )));
    }
    control.apply(spec, true).await.map_err(|e| {
        tracing::warn!(%env, error = %e, "routing table refused");
        Refusal::of(&e)
    })?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "env": env, "applied": true }),
    ))
}

/// `GET /tables/{env}`: the table as it was sent.
async fn get_table(control: &Control, env: &str) -> Handled {
    let table = control.table(env).await.ok_or_else(|| no_table(env))?;
    Ok(json(StatusCode::OK, &table))
}

/// `DELETE /tables/{env}`: remove a table and close its listeners.
async fn delete_table(control: &Control, env: &str) -> Handled {
    if !control.remove(env).await.map_err(|e| Refusal::of(&e))? {
        return Err(no_table(env));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "env": env, "removed": true }),
    ))
}

/// `GET /health?env=E`: the health of every backend of an environment.
async fn get_health(control: &Control, q: &[(&str, &str)]) -> Handled {
    let env = required(q, "env")?;
    let report = control
        .health_report(env)
        .await
        .ok_or_else(|| no_table(env))?;
    Ok(json(StatusCode::OK, &report))
}

/// `GET /stats?env=E&slot=S[&service=X][&since_ms=T][&slow_ms=L]`: windowed
/// statistics.
fn get_stats(control: &Control, q: &[(&str, &str)]) -> Handled {
    let (env, slot) = env_and_slot(q)?;
    let since_ms = match param(q, "since_ms").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(v)) => v,
        Some(Err(_)) => return Err(Refusal::bad("since_ms must be unix milliseconds")),
    };
    let slow_ms = match param(q, "slow_ms").map(str::parse::<u64>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return Err(Refusal::bad("slow_ms must be milliseconds")),
    };
    let query = StatsQuery {
        env: env.to_owned(),
        slot: slot.to_owned(),
        service: param(q, "service").map(str::to_owned),
        since_ms,
        slow_ms,
    };
    Ok(json(StatusCode::OK, &control.stats(&query)))
}

/// `GET /inflight?env=E&slot=S[&service=X]`: what is still running on a slot.
fn get_inflight(control: &Control, q: &[(&str, &str)]) -> Handled {
    let (env, slot) = env_and_slot(q)?;
    Ok(json(
        StatusCode::OK,
        &control.inflight(env, slot, param(q, "service")),
    ))
}

/// `POST /drain`: schedule the close of a slot's long-lived work.
async fn post_drain(control: &Arc<Control>, req: Request<Incoming>) -> Handled {
    let bytes = body(req).await?;
    let drain: DrainRequest = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::bad(format!("drain request JSON: {e}")))?;
    let answer = control.drain(drain).await.map_err(|e| Refusal::of(&e))?;
    Ok(json(StatusCode::OK, &answer))
}

/// `GET /metrics`: the Prometheus (OpenMetrics) text.
async fn get_metrics(control: &Control) -> Handled {
    let mut r = Response::new(Full::new(Bytes::from(control.metrics_text().await)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    Ok(r)
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
