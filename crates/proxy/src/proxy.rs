//! The request path: route, choose a slot and a backend, forward, stream the
//! answer back, and account for it.
//!
//! Nothing here returns an error to hyper: every failure becomes a short
//! plain-text answer naming the service and environment (503 no route/no
//! healthy backend, 502 refused/reset, 504 timeout, 403 preview token), and
//! the details go to the log. Backends never see the hop-by-hop headers of
//! the client, nor the preview token; they do see `x-hifi-slot`,
//! `x-forwarded-for`, `x-forwarded-proto` and `x-forwarded-host`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::balancer::{self, Choice, IdGen, PREVIEW_TOKEN_HEADER, SLOT_HEADER};
use crate::body::{ProxyBody, ReqBody};
use crate::compiled::{CompiledSlot, EnvCell};
use crate::metrics::Class;
use crate::router::host_without_port;
use crate::tracking::{InflightGuard, UpgradedGuard};
use crate::upstream::{Failure, Lease, RetryTemplate};
use crate::workers::Workers;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_HIFI_SLOT: HeaderName = HeaderName::from_static(SLOT_HEADER);
static X_HIFI_PREVIEW_TOKEN: HeaderName = HeaderName::from_static(PREVIEW_TOKEN_HEADER);
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

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

    let client_upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
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
                    let upstream = hyper::upgrade::on(&mut resp);
                    // The connection now carries the tunnel: never pooled.
                    spawn_tunnel(client, upstream, lease, &slot, ctx.shared.shutdown.clone());
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

fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) present in a header map, found in
/// one pass over its names (most requests carry none, so the removals and
/// their hash lookups are skipped).
const HOP_CONNECTION: u16 = 1;
const HOP_UPGRADE: u16 = 1 << 1;
const HOP_PREVIEW_TOKEN: u16 = 1 << 2;
const HOP_OTHER: u16 = 1 << 3;

fn hop_by_hop_present(headers: &HeaderMap) -> u16 {
    let mut found = 0;
    for name in headers.keys() {
        found |= if name == header::CONNECTION {
            HOP_CONNECTION
        } else if name == header::UPGRADE {
            HOP_UPGRADE
        } else if name == header::TE
            || name == header::TRAILER
            || name == header::TRANSFER_ENCODING
            || name == header::PROXY_AUTHENTICATE
            || name == header::PROXY_AUTHORIZATION
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
        {
            HOP_OTHER
        } else if name == X_HIFI_PREVIEW_TOKEN {
            HOP_PREVIEW_TOKEN
        } else {
            0
        };
    }
    found
}

/// Remove the headers that only concern one hop (RFC 9110 §7.6.1), including
/// those the `Connection` header names. With `keep_upgrade`, the
/// `Upgrade`/`Connection: upgrade` pair is kept for the backend. With
/// `request`, the preview token is removed too.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool, request: bool) {
    let present = hop_by_hop_present(headers);
    if request && present & HOP_PREVIEW_TOKEN != 0 {
        headers.remove(&X_HIFI_PREVIEW_TOKEN);
    }
    if !keep_upgrade && present & !HOP_PREVIEW_TOKEN == 0 {
        return;
    }
    if let Some(conn) = headers.remove(header::CONNECTION)
        && let Ok(listed) = conn.to_str()
    {
        for name in listed.split(',') {
            let name = name.trim();
            let keep = keep_upgrade && name.eq_ignore_ascii_case("upgrade");
            if !name.is_empty() && !keep {
                headers.remove(name);
            }
        }
    }
    if present & HOP_OTHER != 0 {
        headers.remove(&KEEP_ALIVE);
        headers.remove(&PROXY_CONNECTION);
        headers.remove(header::TE);
        headers.remove(header::TRAILER);
        headers.remove(header::TRANSFER_ENCODING);
        headers.remove(header::PROXY_AUTHENTICATE);
        headers.remove(header::PROXY_AUTHORIZATION);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if present & HOP_UPGRADE != 0 {
        headers.remove(header::UPGRADE);
    }
}

fn prepare_headers(
    headers: &mut HeaderMap,
    conn: &ConnCtx,
    slot: &CompiledSlot,
    upgrade: bool,
    authority: Option<&http::uri::Authority>,
) {
    strip_hop_by_hop(headers, upgrade, true);
    headers.insert(X_HIFI_SLOT.clone(), slot.header.clone());
    let host = match headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => {
            // HTTP/2 clients send :authority instead of Host.
            let h = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let Some(h) = &h {
                headers.insert(header::HOST, h.clone());
            }
            h
        }
    };
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    let xff = match headers.get(&X_FORWARDED_FOR) {
        None => conn.peer_ip.clone(),
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + conn.peer_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(conn.peer_ip.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| conn.peer_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
}

/// Join the client's and the backend's upgraded connections, counted on the
/// slot and closed at its drain deadline or at proxy shutdown.
fn spawn_tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    lease: Lease,
    slot: &CompiledSlot,
    shutdown: CancellationToken,
) {
    let guard = UpgradedGuard::new(slot.state.clone());
    let drain = slot.state.drain_token();
    let (env, service, name) = (
        slot.state.env.clone(),
        slot.state.service.clone(),
        slot.name.clone(),
    );
    tokio::spawn(async move {
        let _guard = guard;
        let joined = tokio::try_join!(client, upstream);
        // The backend connection's sender is held until the upgrade is
        // done, then dropped without going back to the pool.
        lease.discard();
        let (client, upstream) = match joined {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(%env, %service, slot = %name, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            _ = drain.cancelled() => {
                tracing::info!(%env, %service, slot = %name, "upgraded connection closed at the drain deadline");
            }
            _ = shutdown.cancelled() => {}
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = r {
                    tracing::debug!(%env, %service, slot = %name, error = %e, "upgraded connection ended");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        // Nothing hop-by-hop: untouched.
        let mut h = map(&[("host", "a"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(names(&h), ["accept", "host"]);

        let mut h = map(&[
            ("host", "a"),
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "x"),
            ("x-hifi-preview-token", "t"),
        ]);
        let mut resp = h.clone();
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(names(&h), ["host"]);
        // A response keeps a header that happens to be named like the token.
        strip_hop_by_hop(&mut resp, false, false);
        assert_eq!(names(&resp), ["host", "x-hifi-preview-token"]);

        // Only the token: removed from a request.
        let mut h = map(&[("host", "a"), ("x-hifi-preview-token", "t")]);
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(names(&h), ["host"]);

        // An upgrade keeps Upgrade and `Connection: upgrade`.
        let mut h = map(&[
            ("connection", "Upgrade, x-secret"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
        ]);
        strip_hop_by_hop(&mut h, true, true);
        assert_eq!(names(&h), ["connection", "upgrade"]);
        assert_eq!(h[header::CONNECTION], "upgrade");
    }
}
