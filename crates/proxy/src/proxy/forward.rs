//! Forwarding a request to a backend of its slot: pick a healthy backend,
//! rewrite the request for it, send it (with the pool's retry), stream the
//! answer back with `x-hifi-slot`, and record the outcome in the slot's
//! metrics. A backend that gives no answer becomes a 502 or 504 naming the
//! service, environment and slot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use tokio_util::sync::CancellationToken;

use crate::body::{ProxyBody, ReqBody, grpc_failed};
use crate::compiled::{Backend, CompiledSlot};
use crate::metrics::Class;
use crate::table::Protocol;
use crate::tracking::{InflightGuard, SlotState};
use crate::upstream::{Failure, Lease, RetryTemplate};

use super::headers::{X_HIFI_SLOT, prepare_headers, strip_hop_by_hop};
use super::{ConnCtx, plain, upgrade};

/// Forward `req` to a backend of `slot` and answer with the backend's
/// response (adding `set_cookie`), or with the proxy's own error answer.
/// `start` is when the request arrived, for the latency metric.
pub(super) async fn forward(
    conn: &ConnCtx,
    slot: Arc<CompiledSlot>,
    set_cookie: Option<HeaderValue>,
    mut req: Request<Incoming>,
    start: Instant,
) -> Response<ProxyBody> {
    let shared = &conn.listener.shared;
    let guard = InflightGuard::new(slot.state.clone());
    // Counts the request as abandoned if hyper drops this future (the client
    // reset its stream or connection) before a response was produced.
    let mut waiting = Waiting {
        state: &slot.state,
        start,
        answered: false,
    };
    let Some(backend) = slot.pick() else {
        waiting.answered = true;
        slot.state
            .metrics
            .finished(Class::ProxyError, start.elapsed());
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "hifi: no healthy backend for service {} in {}",
                slot.state.service, slot.state.env
            ),
        );
    };

    let timeout = slot.timeout.unwrap_or(shared.upstream_timeout);
    if slot.protocol != Protocol::Http1 {
        let r = forward_h2(conn, &slot, backend, set_cookie, req, start, guard, timeout).await;
        waiting.answered = true;
        return r;
    }
    let client_upgrade = upgrade::client_side(&mut req);
    let up_req = backend_request(req, conn, &slot, client_upgrade.is_some());
    let retry = if client_upgrade.is_some() {
        None
    } else {
        RetryTemplate::for_request(&up_req)
    };

    let sent = slot
        .upstream
        .send(backend.addr, &backend.pool, up_req, retry, timeout)
        .await;
    waiting.answered = true;
    match sent {
        Ok((resp, lease)) => {
            slot.state
                .metrics
                .finished(Class::of(resp.status().as_u16()), start.elapsed());
            respond(
                resp,
                Some(lease),
                guard,
                client_upgrade,
                &slot,
                set_cookie,
                &shared.shutdown,
            )
        }
        Err(failure) => {
            slot.state
                .metrics
                .finished(Class::ProxyError, start.elapsed());
            failed(failure, &slot, backend.addr, timeout)
        }
    }
}

/// A request waiting for its response; see `forward`.
struct Waiting<'a> {
    state: &'a SlotState,
    start: Instant,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.state.metrics.abandoned(self.start.elapsed());
        }
    }
}

/// Forward to a backend that speaks HTTP/2 (h2c or gRPC): the request goes
/// over the worker's multiplexed connection to that backend with an
/// absolute URI and `te: trailers` kept (gRPC servers ask for it); a gRPC
/// answer whose `grpc-status` (in a trailers-only answer, or in the
/// trailers) is not 0 counts as an error of the slot.
#[allow(clippy::too_many_arguments)]
async fn forward_h2(
    conn: &ConnCtx,
    slot: &CompiledSlot,
    backend: &Backend,
    set_cookie: Option<HeaderValue>,
    req: Request<Incoming>,
    start: Instant,
    guard: InflightGuard,
    timeout: Duration,
) -> Response<ProxyBody> {
    let shared = &conn.listener.shared;
    let te_trailers = req
        .headers()
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let mut up = backend_request(req, conn, slot, false);
    let authority = up
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_owned))
        .unwrap_or_else(|| backend.addr.to_string());
    let pq = up
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    match Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(pq)
        .build()
    {
        Ok(uri) => *up.uri_mut() = uri,
        Err(_) => {
            slot.state
                .metrics
                .finished(Class::ProxyError, start.elapsed());
            return plain(StatusCode::BAD_REQUEST, "hifi: invalid authority".into());
        }
    }
    *up.version_mut() = Version::HTTP_2;
    if te_trailers {
        up.headers_mut()
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let grpc = slot.protocol == Protocol::Grpc;
    match slot
        .upstream
        .send_h2(backend.addr, &backend.h2, up, timeout)
        .await
    {
        Ok(resp) => {
            let metrics = &slot.state.metrics;
            metrics.finished(Class::of(resp.status().as_u16()), start.elapsed());
            if grpc && grpc_failed(resp.headers()) {
                // A trailers-only answer carrying the failure.
                metrics.grpc_error();
            }
            let mut r = respond(resp, None, guard, None, slot, set_cookie, &shared.shutdown);
            if let ProxyBody::Upstream(body) = r.body_mut() {
                body.watch_grpc(grpc);
            }
            r
        }
        Err(failure) => {
            slot.state
                .metrics
                .finished(Class::ProxyError, start.elapsed());
            failed(failure, slot, backend.addr, timeout)
        }
    }
}

/// The client's request rewritten for the backend: its headers prepared
/// (`headers`), the origin form of its URI, HTTP/1.1, and its body streamed
/// as is (or none at all when it has ended already).
#[inline]
fn backend_request(
    req: Request<Incoming>,
    conn: &ConnCtx,
    slot: &CompiledSlot,
    upgrade: bool,
) -> Request<ReqBody> {
    let (mut parts, body) = req.into_parts();
    prepare_headers(
        &mut parts.headers,
        conn,
        slot,
        upgrade,
        parts.uri.authority(),
    );
    // Backends get the origin form (`/path?query`): an HTTP/1.1 client
    // request already has it; h2c and absolute-form requests are rewritten.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;
    let body = if body.is_end_stream() {
        ReqBody::Empty
    } else {
        ReqBody::Incoming(body)
    };
    Request::from_parts(parts, body)
}

/// The backend's response on its way to the client: the tunnel started when
/// it accepts the client's upgrade, hop-by-hop headers removed otherwise;
/// `x-hifi-slot` and the sticky cookie added; the body streamed with the
/// request's in-flight guard and the backend connection's lease.
#[inline]
fn respond(
    mut resp: Response<Incoming>,
    lease: Option<Lease>,
    guard: InflightGuard,
    client_upgrade: Option<OnUpgrade>,
    slot: &CompiledSlot,
    set_cookie: Option<HeaderValue>,
    shutdown: &CancellationToken,
) -> Response<ProxyBody> {
    let lease = match client_upgrade {
        Some(client) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            // The connection now carries the tunnel: never pooled.
            upgrade::tunnel(client, &mut resp, lease, slot, shutdown.clone());
            None
        }
        _ => {
            strip_hop_by_hop(resp.headers_mut(), false, false);
            lease
        }
    };
    let headers = resp.headers_mut();
    headers.insert(X_HIFI_SLOT.clone(), slot.header.clone());
    if let Some(c) = set_cookie {
        headers.append(header::SET_COOKIE, c);
    }
    resp.map(|b| ProxyBody::upstream(b, guard, lease, false))
}

/// The proxy's answer when `backend` of `slot` gave no response: 502 when it
/// refused or dropped the connection, 504 when it did not answer within
/// `timeout`. The cause goes to the log.
#[cold]
fn failed(
    failure: Failure,
    slot: &CompiledSlot,
    backend: SocketAddr,
    timeout: Duration,
) -> Response<ProxyBody> {
    let (env, service, name) = (&slot.state.env, &slot.state.service, &slot.name);
    let (status, msg) = match failure {
        Failure::Connect(e) => {
            tracing::warn!(%env, %service, slot = %name, %backend, error = %e, "backend refused");
            (
                StatusCode::BAD_GATEWAY,
                format!(
                    "hifi: backend of service {service} in {env} (slot {name}) refused the connection"
                ),
            )
        }
        Failure::Exchange(e) => {
            tracing::warn!(%env, %service, slot = %name, %backend, error = %e, "backend failed");
            (
                StatusCode::BAD_GATEWAY,
                format!(
                    "hifi: backend of service {service} in {env} (slot {name}) closed the connection without an answer"
                ),
            )
        }
        Failure::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "hifi: backend of service {service} in {env} (slot {name}) did not answer within {} ms",
                timeout.as_millis()
            ),
        ),
    };
    plain(status, msg)
}
