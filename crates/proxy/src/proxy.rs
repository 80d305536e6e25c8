//! The request path: route, choose a slot and a backend, forward, stream the
//! answer back, and account for it.
//!
//! [`handle`] only strings the steps together, each in its own file:
//! `decide` (which service and slot, or the proxy's own answer: a pure
//! function of the request and the compiled table), `forward` (backend
//! choice, the request to the backend, its answer and the slot's metrics),
//! `headers` (hop-by-hop removal and the headers added for backends) and
//! `upgrade` (the tunnel of an upgraded connection).
//!
//! Nothing here returns an error to hyper: every failure becomes a short
//! plain-text answer naming the service and environment (503 no route/no
//! healthy backend, 502 refused/reset, 504 timeout, 403 preview token), and
//! the details go to the log. Backends never see the hop-by-hop headers of
//! the client, nor the preview token; they do see `x-hifi-slot`,
//! `x-forwarded-for`, `x-forwarded-proto` and `x-forwarded-host`.

pub(crate) mod decide;
mod forward;
mod headers;
mod upgrade;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::balancer::IdGen;
use crate::body::ProxyBody;
use crate::compiled::EnvCell;
use crate::workers::Workers;

use self::decide::{Decision, decide, refuse};

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
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) limits: crate::h1::ConnLimits,
    /// Most open client connections per listener.
    pub(crate) max_connections: usize,
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

/// Handle one request from a client: the connection's hyper service.
///
/// It never fails: every failure is an answer to the client. Taking `conn`
/// by value and returning hyper's `Result` let `service_fn` use it as is, so
/// no wrapper future (and no extra move of the request) sits around it.
pub(crate) async fn handle(
    conn: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    let ctx = &conn.listener;
    let (slot, set_cookie) = {
        // The table is read once, and not held while the request is forwarded.
        let table = ctx.env.table.load();
        match decide(table.as_deref(), ctx.addr, &req, &ctx.shared.ids) {
            Decision::Forward(slot, set_cookie) => (slot, set_cookie),
            Decision::Refuse(why) => return Ok(refuse(ctx, why, req.uri().path())),
        }
    };
    Ok(forward::forward(&conn, slot, set_cookie, req, start).await)
}
