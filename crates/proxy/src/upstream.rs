//! The HTTP client towards backends: a pool of HTTP/1.1 connections per
//! backend of a slot.
//!
//! Each pooled connection is a `hyper::client::conn::http1` sender whose
//! connection future runs as its own task on the worker thread that opened
//! it, and sits in that worker's shard of the backend's pool. A request
//! checks a sender out of its own worker's shard (an uncontended lock: pop
//! the most recently used ready sender), sends on it, and the response body
//! puts it back when the body ends ([`Lease`]). No lock is shared between
//! workers, no request crosses threads, no task is spawned per request.
//!
//! Pool hygiene follows PRIOR-ART pitfall 1: a connection idle for
//! `pool_idle_timeout` (4 s by default, below the 5 s of python's
//! http.server and the 75 s of nginx) is never used again, and the
//! once-a-second sweep closes it, so the proxy closes an idle connection
//! before the backend does; an idempotent request without a body that
//! still fails on a connection (the backend closed it as the request was
//! written) is retried once on a fresh connection; and because the pools
//! belong to the slot's backends, a slot's pool is dropped with the slot
//! once it has left the table and its last in-flight request is done
//! (dropping a sender closes its idle connection).

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::ReqBody;
use crate::workers::current_shard;

/// Settings shared by every slot's client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_idle_timeout: Duration,
    /// Pool shards per backend: one per worker thread plus one.
    pub(crate) shards: usize,
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

type Sender = http1::SendRequest<ReqBody>;

/// An idle connection in a pool.
struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections to one backend, one shard per worker thread so a
/// connection is only used by the thread that drives it.
pub(crate) struct Pool {
    shards: Box<[Shard]>,
}

/// One worker's idle connections, on its own cache lines so that workers
/// never contend for one (false sharing).
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Vec<Idle>>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize = (0..self.shards.len()).map(|i| self.lock(i).len()).sum();
        f.debug_struct("Pool").field("idle", &idle).finish()
    }
}

impl Pool {
    pub(crate) fn new(shards: usize) -> Self {
        Pool {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    /// This thread's shard.
    fn shard(&self) -> usize {
        current_shard() % self.shards.len()
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Vec<Idle>> {
        // Every operation is a push, pop or retain: nothing to repair after
        // a panic. Only one thread uses a shard (apart from the sweep), so
        // the lock is uncontended.
        self.shards[shard]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used connection of `shard` that is ready for a
    /// request and has not been idle for `max_idle`. Closed and expired
    /// connections met on the way are dropped; busy ones (the previous
    /// response is still being read) are kept.
    fn checkout(&self, shard: usize, now: Instant, max_idle: Duration) -> Option<Sender> {
        let mut idle = self.lock(shard);
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(e) = idle.pop() {
            if now.saturating_duration_since(e.since) >= max_idle {
                // The rest were returned even earlier: all expired.
                idle.clear();
                break;
            }
            if e.sender.is_ready() {
                found = Some(e.sender);
                break;
            }
            if !e.sender.is_closed() {
                busy.push(e);
            }
        }
        idle.extend(busy.into_iter().rev());
        found
    }

    fn checkin(&self, shard: usize, sender: Sender) {
        if !sender.is_closed() {
            self.lock(shard).push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Close connections idle for `max_idle` or more, and closed ones.
    pub(crate) fn sweep(&self, now: Instant, max_idle: Duration) {
        for shard in 0..self.shards.len() {
            self.lock(shard).retain(|e| {
                now.saturating_duration_since(e.since) < max_idle && !e.sender.is_closed()
            });
        }
    }
}

/// A connection checked out for one exchange; it goes back to its pool when
/// dropped (at the end of the response body), unless the pool is gone.
pub(crate) struct Lease {
    sender: Option<Sender>,
    pool: Weak<Pool>,
    shard: usize,
}

impl Lease {
    /// Never return this connection (it was upgraded).
    pub(crate) fn discard(mut self) {
        self.sender = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take()
            && let Some(pool) = self.pool.upgrade()
        {
            pool.checkin(self.shard, sender);
        }
    }
}

/// One multiplexed HTTP/2 connection per backend and worker, for services
/// whose backends speak h2c or gRPC.
pub(crate) struct H2Pool {
    shards: Box<[Mutex<Option<http2::SendRequest<ReqBody>>>]>,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool").finish_non_exhaustive()
    }
}

impl H2Pool {
    pub(crate) fn new(shards: usize) -> Self {
        H2Pool {
            shards: (0..shards.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<http2::SendRequest<ReqBody>>> {
        self.shards[current_shard() % self.shards.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// A slot's client.
#[derive(Debug)]
pub(crate) struct Upstream {
    cfg: UpstreamConfig,
}

impl Upstream {
    pub(crate) fn new(cfg: &UpstreamConfig) -> Self {
        Upstream { cfg: *cfg }
    }

    /// Send `req` over this worker's HTTP/2 connection to `addr` (opened
    /// when there is none or it has closed), within `timeout`.
    pub(crate) async fn send_h2(
        &self,
        addr: SocketAddr,
        pool: &H2Pool,
        req: Request<ReqBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Failure> {
        let attempt = async {
            let existing = pool.slot().clone().filter(|s| !s.is_closed());
            let mut sender = match existing {
                Some(s) => s,
                None => {
                    let stream = match tokio::time::timeout(
                        self.cfg.connect_timeout,
                        TcpStream::connect(addr),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            return Err(Failure::Connect(format!("tcp connect error: {e}")));
                        }
                        Err(_) => return Err(Failure::Connect("connect timed out".into())),
                    };
                    let _ = stream.set_nodelay(true);
                    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .handshake(TokioIo::new(stream))
                        .await
                        .map_err(|e| Failure::Connect(describe(&e)))?;
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(backend = %addr, error = %describe(&e), "h2 backend connection ended");
                        }
                    });
                    *pool.slot() = Some(sender.clone());
                    sender
                }
            };
            sender
                .ready()
                .await
                .map_err(|e| Failure::Exchange(describe(&e)))?;
            sender
                .send_request(req)
                .await
                .map_err(|e| Failure::Exchange(describe(&e)))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Open a new connection to `addr` and start driving it.
    async fn connect(&self, addr: SocketAddr) -> Result<Sender, Failure> {
        let stream =
            match tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(Failure::Connect(format!("tcp connect error: {e}"))),
                Err(_) => {
                    return Err(Failure::Connect(format!(
                        "connect timed out after {} ms",
                        self.cfg.connect_timeout.as_millis()
                    )));
                }
            };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Connect(describe(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(backend = %addr, error = %describe(&e), "backend connection ended");
            }
        });
        Ok(sender)
    }

    /// Send `req` to the backend at `addr` through `pool`, retrying once on a
    /// fresh connection when `retry` allows, and give up after `timeout`
    /// (both attempts included).
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        pool: &Arc<Pool>,
        req: Request<ReqBody>,
        retry: Option<RetryTemplate>,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Lease), Failure> {
        let attempt = async {
            let shard = pool.shard();
            let mut sender = match pool.checkout(shard, Instant::now(), self.cfg.pool_idle_timeout)
            {
                Some(s) => s,
                None => self.connect(addr).await?,
            };
            let lease = |sender| Lease {
                sender: Some(sender),
                pool: Arc::downgrade(pool),
                shard,
            };
            match sender.send_request(req).await {
                Ok(resp) => Ok((resp, lease(sender))),
                Err(e) => match retry {
                    Some(t) => {
                        tracing::debug!(error = %describe(&e), "retrying idempotent request on a fresh connection");
                        drop(sender);
                        let mut fresh = self.connect(addr).await?;
                        match fresh.send_request(t.into_request()).await {
                            Ok(resp) => Ok((resp, lease(fresh))),
                            Err(e) => Err(Failure::Exchange(describe(&e))),
                        }
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
