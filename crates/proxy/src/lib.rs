//! hifi's data plane: the reverse proxy that carries every user request.
//!
//! It runs as its own process ([`serve`]) so traffic keeps flowing while the
//! control plane restarts. The control plane drives it through a local admin
//! socket ([`AdminClient`]): it replaces an environment's whole routing
//! table in one step, watches in-flight counts drain, closes long-lived
//! connections at a drain deadline, and reads per-slot statistics for canary
//! analysis.
//!
//! # Routing table
//!
//! One JSON document per environment ([`TableSpec`]), unknown fields refused:
//!
//! ```json
//! { "env": "prod", "listen": "127.0.0.1:8500",
//!   "user_key": "cookie:hifi-user",
//!   "preview_token": null, "preview_listen": "127.0.0.1:18599",
//!   "services": [
//!     { "name": "catalog", "route": "/catalog", "host": null,
//!       "internal_listen": "127.0.0.1:18501", "health": "/healthz",
//!       "active":    { "slot": "blue",  "backends": ["127.0.0.1:4001"] },
//!       "candidate": { "slot": "green", "backends": ["127.0.0.1:4002"], "weight": 10.0 },
//!       "standby":   null,
//!       "protocol": "http1", "request_timeout_ms": null } ] }
//! ```
//!
//! `user_key` defaults to `cookie:hifi-user`, `health` to `/healthz`,
//! `protocol` to `http1` (else `h2c` or `grpc`: what the backends speak;
//! a slot may carry its own `protocol`, for a rollout between releases that
//! speak different ones), `preview_token`, `preview_listen`, `host`, `candidate`, `standby` and
//! `request_timeout_ms` (the service's own response-header timeout,
//! overriding [`ProxyOptions::upstream_timeout`]) to null. `protocol` and
//! `request_timeout_ms` are left out of stored and returned tables when
//! they have their default, so older readers see the same JSON. Addresses are `IP:PORT` with a fixed port. Refused: unknown fields,
//! a `user_key` that [`hifi_core::UserKey`] does not read (`cookie:NAME` or
//! `header:NAME`, NAME of ASCII letters, digits, `-` and `_`), a weight
//! outside 0–100, an empty backend list, an unparsable address, two services
//! on one (host, route), one slot name in two roles, a listener address used
//! twice or used by another environment.
//!
//! # Updates
//!
//! `PUT /tables/{env}` replaces the whole table of one environment. The new
//! table is validated (a refused table changes nothing), its new listeners
//! are bound (an address taken by another process: 409, nothing changed),
//! then it is stored in one atomic step: a request sees the old table or the
//! new one, never a mix, and takes effect for the next request on every
//! connection. The answer comes once the table is durable in `state_dir`
//! (temp file + fsync + rename); if it cannot be written, the previous table
//! is put back and the update is refused. Listeners the new table no longer
//! has are then closed (their connections finish the request in progress).
//! On start, every stored table is loaded, so a restarted proxy serves
//! exactly what it served before.
//!
//! # Routing rules
//!
//! - The public listener routes by the longest `route` prefix on path-segment
//!   boundaries (`/cat` does not match `/catalog`; `/` catches all); a route
//!   with a `host` only matches that host and wins over one without at equal
//!   length. Routing reads the normal form of the path (escapes of
//!   unreserved characters decoded, `//` merged, `.` and `..` segments
//!   removed), so `/catalog/../admin` and `/catalog/%2e%2e/admin` route as
//!   `/admin`: no `..` escapes a route prefix. The path is forwarded as
//!   received. No route: 503.
//! - Each service's `internal_listen` is a stable address for its peers
//!   (`HIFI_URL_<SERVICE>`); a request there carrying `x-hifi-slot: <name>`
//!   of one of the service's slots (active, candidate or standby) stays on
//!   that slot, so one user's request path never mixes releases.
//! - Slot choice is per request, never per connection: a keep-alive
//!   connection sees a switch on its very next request.
//! - Sticky canary: the user key is the configured cookie or header, else the
//!   `hifi-user` cookie; a public request with neither gets
//!   `Set-Cookie: hifi-user=<random id>; Path=/; HttpOnly; SameSite=Lax` and
//!   is bucketed by that id. Bucket = FNV-1a-64(key) mod 10000; the user
//!   goes to the candidate iff bucket < weight × 100. The same user thus lands
//!   on the same slot for every service of the environment, and as the weight
//!   rises users only move from active to candidate. (A user who logs in and
//!   starts sending the configured key may change bucket once: their
//!   identity changed.)
//! - Testers: `x-hifi-slot: candidate` on the public listener goes to the
//!   candidate (503 if the service has none); when the table has a
//!   `preview_token` the request also needs `x-hifi-preview-token: <token>`,
//!   else 403. Other `x-hifi-slot` values from the public side are ignored.
//! - The optional `preview_listen` routes like the public listener but sends
//!   every request to the candidate (the active slot where a service has no
//!   candidate): it is where a smoke check reaches a release before any user
//!   does. Bound to loopback, only local processes reach it and it asks no
//!   token; bound to any other address (`0.0.0.0:…`), it asks for the
//!   `preview_token` too when the table has one (else 403). The token is
//!   compared in constant time, and the tables in `state_dir` are written
//!   0600 (their directory 0700) since they hold it.
//! - Every request to a backend carries `x-hifi-slot: <slot name>`,
//!   `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host`; hop-by-hop
//!   headers and the preview token are removed. Responses carry
//!   `x-hifi-slot` too.
//!
//! # Sticky users of a slot that goes away (PRIOR-ART pitfall 5)
//!
//! Stickiness is a property of the user's bucket, not a pin to a slot. When
//! a table drops a slot (candidate aborted, or old active switched away), a
//! user whose bucket pointed there is routed by the new table from their
//! next request on: requests already in flight on the old slot finish there,
//! their streaming responses and WebSockets stay open until the drain
//! deadline ([`DrainRequest`]) and are then closed, and the client's
//! reconnect lands on the new slot. A slot kept as standby receives no user
//! traffic at all; only internal requests that name it explicitly reach it.
//! No slot outside active/candidate ever admits users, unlike a drained
//! HAProxy server that still admits its sticky users.
//!
//! # Health
//!
//! Every backend is probed (`GET <health>`) each `health_interval`; after
//! `unhealthy_threshold` consecutive failures it leaves rotation, and one
//! success brings it back. A backend new to the proxy counts as healthy
//! until probed: the control plane only adds backends it has already
//! health-checked, and starting them unhealthy would delay every switch by a
//! probe interval. No healthy backend: 503.
//!
//! # Protocols
//!
//! HTTP/1.1 clients are served by a purpose-built forwarding path (`h1`):
//! heads are parsed with `httparse` and validated strictly, written to
//! pooled backend connections as bytes, and bodies stream both ways with
//! explicit framing, on the client connection's own task. A connection that
//! opens with the HTTP/2 preface (h2c, prior knowledge) is served by hyper.
//! Services with `protocol` `h2c` or `grpc` are reached over HTTP/2 (one
//! multiplexed connection per backend and worker); an HTTP/1.1 client's
//! request to them is translated (its body read whole, at most 8 MiB, else
//! 413; the answer's trailers dropped). Only `websocket` is ever
//! upgraded: other `Upgrade` requests (`h2c`) reach backends as plain
//! requests, without the upgrade fields.
//!
//! Framing follows RFC 9112 strictly, so the proxy and a backend can never
//! disagree on where a request ends (no request smuggling): `Transfer-Encoding`
//! with `Content-Length`, in HTTP/1.0, or whose codings are not exactly
//! `chunked` (400; other codings 501); `Content-Length` not plain digits or
//! repeated with different values (400); obs-fold, bare CR or LF, NUL or
//! other control characters, whitespace before a field's colon (400);
//! chunk sizes that are not hex or overflow, chunk data not followed by
//! CRLF (400); two `Host` fields, no `Host` in HTTP/1.1, an absolute-form
//! target whose authority differs from `Host` (400); `CONNECT` (405); a head
//! line over `max_header_line` (431, 414 for the request line) or a head
//! over `max_head_bytes` (431); versions other than 1.0/1.1 (505). Every such
//! answer closes the connection. A chunked body whose bytes at hand are
//! malformed is refused before any backend sees it; one that breaks later
//! reaches the backend without its last chunk, and the backend connection
//! is dropped. Empty lines before a request are ignored; after a request
//! with `Connection: close`, pipelined requests are neither run nor
//! answered.
//!
//! # Limits and timeouts
//!
//! One proxy process serves every environment, so no client may hold it:
//! a request head must arrive within `header_read_timeout` (10 s; counted
//! from accept for a connection's first request, so a connection that never
//! sends a byte is closed then; 408 when part of a head came), a keep-alive
//! connection may idle `keepalive_timeout` (60 s) between requests, a
//! request body may go `body_read_timeout` (30 s) without a byte (then 408,
//! counted as the client's, not the backend's), and each listener serves at
//! most `max_connections_per_listener` (4096) connections at once (beyond
//! it, it stops accepting until one closes). The backend has
//! `upstream_timeout` (60 s), or the service's `request_timeout_ms`, to send
//! its response headers, counted once the request is fully sent (then 504).
//! All in [`ProxyOptions`].
//!
//! # Outcome attribution
//!
//! Every request's end is attributed, like nginx's 499 and Envoy's
//! downstream resets; only the backend's side counts in [`Stats::errors`]:
//!
//! | ending | counted in |
//! |---|---|
//! | backend answered | `requests`; 5xx also in `errors` |
//! | backend refused, reset, timed out before answering; no healthy backend (502/503/504) | `requests`, `errors` |
//! | backend broke off its response body; gRPC `grpc-status` not 0 | `errors` |
//! | client went away or stalled while sending its body | `requests`, `client_closed` |
//! | client sent a chunked body that cannot be framed (400) | `requests`, `bad_requests` |
//! | client went away waiting for the response headers | `requests`, `abandoned`, latency (time waited); `errors` and `abandoned_slow` when longer than the query's `slow_ms` |
//! | client went away while the response was sent | `client_closed` |
//!
//! So a canary is not failed by clients that abandon uploads, and a release
//! that hangs fails its step (with `slow_ms`) even though its users give up
//! before the proxy's timeout. Prometheus: `hifi_proxy_outcomes_total`
//! with an `outcome` label (`backend_answered`, `backend_failed`,
//! `client_closed`, `bad_request`, `abandoned`), and
//! `hifi_proxy_bad_requests_total{env}` for heads refused before routing.
//!
//! # Errors seen by clients
//!
//! Short plain-text bodies naming service and environment: 503 (no table,
//! no route, no healthy backend, no candidate), 502 (backend refused or
//! closed the connection, or answered something that is not HTTP), 504 (no
//! response headers within the timeout), 403 (preview token), 408 (head or
//! body too slow), 413 (a body over 8 MiB for an HTTP/2 backend from an
//! HTTP/1.1 client), and the framing answers above.
//!
//! # Drain deadline
//!
//! At a slot's drain deadline ([`DrainRequest`]), a WebSocket (the request
//! carried `Sec-WebSocket-Key` and the backend accepted it) gets a close
//! frame with 1001 (going away) on both sides, after the frame in progress,
//! so clients reconnect instead of seeing 1006; other upgraded connections
//! are cut. An event stream (`text/event-stream`, asked for with `Accept:
//! text/event-stream`) ends cleanly with the chunked terminator and the
//! client's connection stays open for the reconnect; other streaming bodies
//! are cut, so a truncated download can never look complete.
//!
//! # Layout
//!
//! - [`table`] — the table's JSON shape and its validation.
//! - `compiled` — the compiled table that requests read, swapped atomically.
//! - `router` — longest-prefix routing on segment boundaries.
//! - `balancer` — slot choice (sticky bucket, tester override, internal
//!   pinning) and round-robin backend choice.
//! - `proxy` — the request path of HTTP/2 clients (`handle`), split into:
//!   - `proxy/decide.rs` — which service and slot a request goes to, or the
//!     proxy's own answer (no table, no route, preview token, no candidate):
//!     a pure function of the request and the compiled table, used by the
//!     HTTP/1 path too;
//!   - `proxy/forward.rs` — backend choice, the request sent to the backend,
//!     its response or the 502/503/504 answer, and the slot's metrics;
//!   - `proxy/headers.rs` — hop-by-hop removal, `x-hifi-slot` and the
//!     `x-forwarded-*` headers;
//!   - `proxy/upgrade.rs` — upgraded (WebSocket) connections and their
//!     tunnel.
//! - `h1` — the HTTP/1.1 forwarding path:
//!   - `h1/head.rs` — request heads: parsing and strict validation (pure);
//!   - `h1/chunked.rs` — the strict chunked decoder (pure);
//!   - `h1/conn.rs` — a client connection: heads, timeouts, the proxy's own
//!     answers, keep-alive, the hand-over of h2c connections to hyper;
//!   - `h1/exchange.rs` — one request forwarded: backend connection, bodies,
//!     the response, outcome attribution;
//!   - `h1/bridge.rs` — HTTP/1.1 clients of h2c and gRPC backends;
//!   - `h1/pool.rs` — idle backend connections, one shard per worker;
//!   - `h1/tunnel.rs` — upgraded connections and WebSocket close frames.
//! - `body` — streamed request/response bodies of the HTTP/2 path and their
//!   drain hook.
//! - `upstream` — hyper's backend connections for HTTP/2 clients (HTTP/1.1
//!   pools, one shard per worker thread; HTTP/2 for h2c/gRPC backends),
//!   pool hygiene and retry.
//! - `health` — active health checks (HTTP/1.1, or HTTP/2 and gRPC-shaped
//!   for h2c and gRPC backends).
//! - `metrics` — per-slot counters, latency histogram, windowed statistics
//!   and the Prometheus exposition.
//! - `tracking` — in-flight requests, upgraded connections and drain tokens
//!   per slot.
//! - `listener` — public/internal listeners and client connections.
//! - `status` — the read-only status listener ([`serve_status`]): the
//!   admin interface's reads over TCP, for an in-cluster proxy's figures.
//! - `workers` — the threads that serve client connections, each with its
//!   own runtime and backend pool shards.
//! - `control` — applying tables, opening/closing listeners, admin queries.
//! - `persist` — durable, atomic storage of the tables.
//! - `admin` — the admin HTTP server on the unix socket.
//! - `client` — [`AdminClient`].

mod admin;
mod balancer;
mod body;
mod client;
mod compiled;
mod control;
mod error;
mod h1;
mod health;
mod listener;
mod metrics;
mod persist;
mod proxy;
mod router;
mod status;
pub mod table;
mod tracking;
mod upstream;
mod workers;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use balancer::bucket;
pub use client::AdminClient;
pub use control::{DrainAnswer, DrainRequest, Inflight};
pub use error::{Error, Result};
pub use health::BackendReport;
pub use metrics::{Stats, StatsQuery};
pub use status::serve_status;
pub use table::{CandidateSpec, Protocol, ServiceSpec, SlotSpec, TableSpec};

/// The pure parsers of the HTTP/1 path, exposed for fuzzing
/// (`fuzz/`); not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::h1::chunked::{ChunkedDecoder, Step, decode_all};
    pub use crate::h1::head::{HeadError, Limits, RequestHead, parse as parse_head};
}

use crate::balancer::IdGen;
use crate::control::Control;
use crate::health::HealthConfig;
use crate::proxy::RequestShared;
use crate::upstream::UpstreamConfig;
use crate::workers::Workers;

/// Address of the admin interface: a unix socket path (never TCP, so routing
/// can only be changed by local processes that may open the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAddr(PathBuf);

impl AdminAddr {
    /// A unix socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        AdminAddr(path.into())
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl From<PathBuf> for AdminAddr {
    fn from(p: PathBuf) -> Self {
        AdminAddr(p)
    }
}

/// Settings of [`serve`]. Build with [`ProxyOptions::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Directory for persisted tables (`<state_dir>/tables/<env>.json`).
    pub state_dir: PathBuf,
    /// Admin socket.
    pub admin: AdminAddr,
    /// Time between health probes of a backend (default 1 s).
    pub health_interval: Duration,
    /// Time a probe may take (default 2 s).
    pub health_timeout: Duration,
    /// Consecutive failed probes before a backend leaves rotation (default 3).
    pub unhealthy_threshold: u32,
    /// Time a backend has to send response headers (default 60 s); then 504.
    pub upstream_timeout: Duration,
    /// Time to connect to a backend (default 2 s); then 502.
    pub connect_timeout: Duration,
    /// Idle time after which a pooled backend connection is closed (default
    /// 4 s: below common backend keep-alive timeouts, see PRIOR-ART pitfall 1).
    pub pool_idle_timeout: Duration,
    /// On shutdown, time given to in-flight requests before [`serve`] returns
    /// (default 10 s).
    pub shutdown_grace: Duration,
    /// Threads serving client connections, each running its own
    /// current-thread runtime with its own backend connections, so a request
    /// never crosses threads (default: the number of CPUs). 0 serves
    /// connections on the caller's runtime instead.
    pub workers: usize,
    /// Time a client has to send a complete request head (default 10 s),
    /// counted from accept for its first request and from the first byte
    /// for later ones; then 408 (or a silent close if it sent nothing).
    /// A connection that never sends a byte is closed after it, so idle
    /// connections cannot pile up and exhaust the descriptors.
    pub header_read_timeout: Duration,
    /// Time a keep-alive client connection may sit idle between requests
    /// (default 60 s).
    pub keepalive_timeout: Duration,
    /// Time a request body may go without a byte from the client (default
    /// 30 s); then 408 and close, counted as `client_closed`, not against
    /// the backend. `upstream_timeout` starts once the body is sent.
    pub body_read_timeout: Duration,
    /// Most open client connections per listener (default 4096): beyond it
    /// the listener stops accepting until one closes (the kernel's backlog
    /// holds the rest), so one environment's flood cannot take every
    /// descriptor of the process. Keep it below `ulimit -n` divided by the
    /// number of listeners you expect to be busy at once.
    pub max_connections_per_listener: usize,
    /// Longest line in a request head (request line: 414; field line: 431),
    /// default 16 KiB.
    pub max_header_line: usize,
    /// Largest request head (431), default 64 KiB.
    pub max_head_bytes: usize,
}

impl ProxyOptions {
    /// Defaults for a state directory and admin socket.
    pub fn new(state_dir: impl Into<PathBuf>, admin: AdminAddr) -> Self {
        ProxyOptions {
            state_dir: state_dir.into(),
            admin,
            health_interval: Duration::from_secs(1),
            health_timeout: Duration::from_secs(2),
            unhealthy_threshold: 3,
            upstream_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(4),
            shutdown_grace: Duration::from_secs(10),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_connections_per_listener: 4096,
            max_header_line: 16 * 1024,
            max_head_bytes: 64 * 1024,
        }
    }
}

/// Bind the admin socket, refusing to steal it from a live proxy but
/// replacing a stale file left by one that died.
async fn bind_admin(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(Error::AdminInUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(|source| Error::Io {
            action: "remove stale admin socket",
            path: path.to_path_buf(),
            source,
        })?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| Error::Io {
        action: "bind admin socket",
        path: path.to_path_buf(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| Error::Io {
                action: "restrict admin socket",
                path: path.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(listener)
}

/// Run the proxy until `shutdown` completes: load the persisted tables, open
/// their listeners and the admin socket, and serve. On shutdown, listeners
/// stop accepting, in-flight requests get `shutdown_grace` to finish, and the
/// admin socket file is removed.
///
/// Accepting, the admin socket and health checks run on the caller's tokio
/// runtime; client connections are served by `opts.workers` threads of the
/// proxy's own (or on the caller's runtime when that is 0).
pub async fn serve(opts: ProxyOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let tables_dir = persist::tables_dir(&opts.state_dir);
    std::fs::create_dir_all(&tables_dir).map_err(|source| Error::Io {
        action: "create state directory",
        path: tables_dir.clone(),
        source,
    })?;
    let admin_path = opts.admin.path().to_path_buf();
    let admin_listener = bind_admin(&admin_path).await?;

    let workers = Workers::start(opts.workers).map_err(|source| Error::Io {
        action: "start worker threads",
        path: PathBuf::new(),
        source,
    })?;
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let upstream = UpstreamConfig {
        connect_timeout: opts.connect_timeout,
        pool_idle_timeout: opts.pool_idle_timeout,
        shards: workers.shards(),
    };
    let shared = Arc::new(RequestShared {
        upstream_timeout: opts.upstream_timeout,
        connect_timeout: opts.connect_timeout,
        pool_idle_timeout: opts.pool_idle_timeout,
        limits: h1::ConnLimits {
            header_read_timeout: opts.header_read_timeout,
            keepalive_timeout: opts.keepalive_timeout,
            body_read_timeout: opts.body_read_timeout,
            head: h1::head::Limits {
                max_head: opts.max_head_bytes.max(1024),
                max_line: opts.max_header_line.max(256),
            },
        },
        max_connections: opts.max_connections_per_listener.max(1),
        ids: IdGen::new(),
        shutdown: token.clone(),
        workers,
    });
    let control = Arc::new(Control::new(
        tables_dir.clone(),
        upstream,
        shared.clone(),
        tracker.clone(),
    ));

    let loaded = persist::load_all(&tables_dir);
    let result = async {
        for spec in loaded? {
            let env = spec.env.clone();
            control
                .apply(spec, false)
                .await
                .map_err(|e| Error::CorruptState {
                    path: tables_dir.join(format!("{env}.json")),
                    message: e.to_string(),
                })?;
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = result {
        token.cancel();
        shared.workers.shutdown().await;
        let _ = std::fs::remove_file(&admin_path);
        return Err(e);
    }

    tracker.spawn(health::run_checker(
        control.health.clone(),
        HealthConfig {
            interval: opts.health_interval,
            timeout: opts.health_timeout,
            unhealthy_threshold: opts.unhealthy_threshold.max(1),
        },
        token.clone(),
    ));
    {
        let control = control.clone();
        let token = token.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => {
                        control.tick();
                        control.sweep_pools().await;
                    }
                }
            }
        });
    }
    tracing::info!(admin = %admin_path.display(), "hifi proxy serving");

    tokio::select! {
        _ = admin::serve(admin_listener, control.clone()) => {}
        _ = shutdown => {}
    }
    tracing::info!("hifi proxy shutting down");
    token.cancel();
    tracker.close();
    if tokio::time::timeout(opts.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = opts.shutdown_grace.as_millis() as u64,
            "connections still open after the shutdown grace period; closing them"
        );
    }
    shared.workers.shutdown().await;
    let _ = std::fs::remove_file(&admin_path);
    Ok(())
}
