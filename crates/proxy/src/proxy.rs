//! The request path: route, choose a slot and a backend, forward, stream the
//! answer back, and account for it.
//!
//! Nothing here returns an error to hyper: every failure becomes a short
//! plain-text answer naming the service and environment (503 no route/no
//! healthy backend, 502 refused/reset, 504 timeout, 403 preview token), and
//! the details go to the log. Backends never see the hop-by-hop headers of
//! the client, nor the preview token; they do see `x-hifi-slot`,
//! `x-forwarded-for`, `x-forwarded-proto` and `x-forwarded-host`.
//!
//! The headers of the exchange are in `headers`, upgraded connections in
//! `upgrade`.

mod headers;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as _, Incoming};
use tokio_util::sync::CancellationToken;

use crate::balancer::{self, Choice, IdGen, PREVIEW_TOKEN_HEADER};
use crate::body::{ProxyBody, ReqBody};
use crate::compiled::EnvCell;
use crate::metrics::Class;
use crate::router::host_without_port;
use crate::tracking::InflightGuard;
use crate::upstream::{Failure, RetryTemplate};
use crate::workers::Workers;

use self::headers::{X_HIFI_SLOT, prepare_headers, strip_hop_by_hop};

/// What every request on a listener shares.
#[derive(Debug)]
pub(crate) struct ListenerCtx {
    pub(crate) env: Arc<EnvCell>,
    /// The configured address (not the accepted socket's), as in the table.
    pub(crate) addr: SocketAddr,
    pub(crate) shared: Arc<RequestShared>,
}

/// Proxy-wide settings and helpers of the request path.
#[derive(Debug)]
pub(crate) struct RequestShared {
    pub(crate) upstream_timeout: Duration,
    pub(crate) ids: IdGen,
    pub(crate) shutdown: CancellationToken,
    pub(crate) workers: Workers,
}

/// One client connection.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) listener: Arc<ListenerCtx>,
    /// The client's IP as a header value, built once per connection.
    pub(crate) peer_ip: HeaderValue,
}

impl ConnCtx {
    pub(crate) fn new(listener: Arc<ListenerCtx>, peer: SocketAddr) -> Self {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnCtx { listener, peer_ip }
    }
}

/// A short plain-text answer made by the proxy.
pub(crate) fn plain(status: StatusCode, msg: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(Bytes::from(msg + "\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Handle one request from a client.
pub(crate) async fn handle(conn: &ConnCtx, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let start = Instant::now();
    let ctx = &conn.listener;
    let (slot, set_cookie) = {
        let guard = ctx.env.table.load();
        let Some(table) = guard.as_ref() else {
            ctx.env
                .unrouted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("hifi: environment {} has no routing table", ctx.env.name),
            );
        };
        let preview = table.preview_listen == Some(ctx.addr);
        let public = preview || table.listen == ctx.addr;
        let svc = if public {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str()))
                .map(host_without_port);
            table
                .router
                .route(host, req.uri().path())
                .map(|i| &table.services[i])
        } else {
            table.internal_service(ctx.addr)
        };
        let Some(svc) = svc else {
            ctx.env
                .unrouted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let msg = if public {
                format!(
                    "hifi: no route for {} in {}",
                    req.uri().path(),
                    ctx.env.name
                )
            } else {
                format!("hifi: listener {} of {} is closing", ctx.addr, ctx.env.name)
            };
            return plain(StatusCode::SERVICE_UNAVAILABLE, msg);
        };
        let choice = if preview {
            // The preview listener is the tester override without a token.
            let slot = svc.candidate.as_ref().map_or(&svc.active, |(c, _)| c);
            Choice::Slot(slot.clone(), None)
        } else {
            balancer::choose(table, svc, req.headers(), public, &ctx.shared.ids)
        };
        match choice {
            Choice::Slot(slot, cookie) => (slot, cookie),
            Choice::Forbidden => {
                return plain(
                    StatusCode::FORBIDDEN,
                    format!(
                        "hifi: the candidate of {} needs a valid {PREVIEW_TOKEN_HEADER}",
                        ctx.env.name
                    ),
                );
            }
            Choice::NoCandidate => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "hifi: service {} in {} has no candidate",
                        svc.name, ctx.env.name
                    ),
                );
            }
        }
    };

    let guard = InflightGuard::new(slot.state.clone());
    let Some(backend) = slot.pick() else {
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

    let client_upgrade = upgrade::client_side(&mut req);
    let (mut parts, body) = req.into_parts();
    prepare_headers(
        &mut parts.headers,
        conn,
        &slot,
        client_upgrade.is_some(),
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
    let up_req = Request::from_parts(parts, body);
    let retry = if client_upgrade.is_some() {
        None
    } else {
        RetryTemplate::for_request(&up_req)
    };

    match slot
        .upstream
        .send(
            backend.addr,
            &backend.pool,
            up_req,
            retry,
            ctx.shared.upstream_timeout,
        )
        .await
    {
        Ok((mut resp, lease)) => {
            let status = resp.status();
            slot.state
                .metrics
                .finished(Class::of(status.as_u16()), start.elapsed());
            let lease = match client_upgrade {
                Some(client) if status == StatusCode::SWITCHING_PROTOCOLS => {
                    // The connection now carries the tunnel: never pooled.
                    upgrade::tunnel(client, &mut resp, lease, &slot, ctx.shared.shutdown.clone());
                    None
                }
                _ => {
                    strip_hop_by_hop(resp.headers_mut(), false, false);
                    Some(lease)
                }
            };
            let headers = resp.headers_mut();
            headers.insert(X_HIFI_SLOT.clone(), slot.header.clone());
            if let Some(c) = set_cookie {
                headers.append(header::SET_COOKIE, c);
            }
            resp.map(|b| ProxyBody::upstream(b, guard, lease))
        }
        Err(failure) => {
            slot.state
                .metrics
                .finished(Class::ProxyError, start.elapsed());
            let (env, service, name) = (&slot.state.env, &slot.state.service, &slot.name);
            let (status, msg) = match failure {
                Failure::Connect(e) => {
                    tracing::warn!(%env, %service, slot = %name, backend = %backend.addr, error = %e, "backend refused");
                    (
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "hifi: backend of service {service} in {env} (slot {name}) refused the connection"
                        ),
                    )
                }
                Failure::Exchange(e) => {
                    tracing::warn!(%env, %service, slot = %name, backend = %backend.addr, error = %e, "backend failed");
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
                        ctx.shared.upstream_timeout.as_millis()
                    ),
                ),
            };
            plain(status, msg)
        }
    }
}
