//! The HTTP client towards backends: one pooled client per slot.
//!
//! Pool hygiene follows PRIOR-ART pitfall 1: idle connections are dropped
//! after `pool_idle_timeout` (4 s by default, below the 5 s of python's
//! http.server and the 75 s of nginx), so the proxy closes an idle connection
//! before the backend does; an idempotent request without a body that still
//! fails on a connection (the backend closed it as the request was written)
//! is retried once on a fresh, unpooled connection; and because each slot
//! owns its client, the slot's pool is dropped with the slot once it has left
//! the table and its last in-flight request is done.

use std::error::Error as StdError;
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ReqBody;

/// Settings shared by every slot's client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_idle_timeout: Duration,
}

/// Why a backend gave no response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Could not connect (refused, unreachable, connect timeout): 502.
    Connect(String),
    /// Connected but the exchange failed (reset, closed early): 502.
    Exchange(String),
    /// No response headers in time: 504.
    Timeout,
}

/// What is needed to send a bodiless request a second time.
pub(crate) struct RetryTemplate {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl RetryTemplate {
    /// A template when the request may be retried: idempotent method and no
    /// body (so nothing was consumed from the client).
    pub(crate) fn for_request(req: &Request<ReqBody>) -> Option<Self> {
        let idempotent = matches!(
            *req.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        );
        (idempotent && matches!(req.body(), ReqBody::Empty)).then(|| RetryTemplate {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        })
    }

    fn into_request(self) -> Request<ReqBody> {
        let mut req = Request::new(ReqBody::Empty);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers;
        *req.version_mut() = Version::HTTP_11;
        req
    }
}

/// A slot's client.
#[derive(Debug)]
pub(crate) struct Upstream {
    pooled: Client<HttpConnector, ReqBody>,
    fresh: Client<HttpConnector, ReqBody>,
}

fn connector(cfg: &UpstreamConfig) -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(cfg.connect_timeout));
    c
}

impl Upstream {
    pub(crate) fn new(cfg: &UpstreamConfig) -> Self {
        let pooled = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            // We set Host ourselves (the client's own Host would name the
            // backend, not what the user asked for).
            .set_host(false)
            .build(connector(cfg));
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .set_host(false)
            .build(connector(cfg));
        Upstream { pooled, fresh }
    }

    /// Send `req`, retrying once on a fresh connection when `retry` allows,
    /// and give up after `timeout` (both attempts included).
    pub(crate) async fn send(
        &self,
        req: Request<ReqBody>,
        retry: Option<RetryTemplate>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Failure> {
        let attempt = async {
            match self.pooled.request(req).await {
                Ok(resp) => Ok(resp),
                Err(e) if e.is_connect() => Err(Failure::Connect(describe(&e))),
                Err(e) => match retry {
                    Some(t) => {
                        tracing::debug!(error = %describe(&e), "retrying idempotent request on a fresh connection");
                        self.fresh.request(t.into_request()).await.map_err(|e| {
                            if e.is_connect() {
                                Failure::Connect(describe(&e))
                            } else {
                                Failure::Exchange(describe(&e))
                            }
                        })
                    }
                    None => Err(Failure::Exchange(describe(&e))),
                },
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }
}

/// The error and its causes on one line, for logs.
pub(crate) fn describe(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
