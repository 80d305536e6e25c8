//! hifi's team server: the HTTP API that `hifi up` serves beside the
//! control plane when `[server]` is configured, the client the remote CLI
//! talks to it with, and the webhooks it delivers.
//!
//! Every handler authenticates the caller's token into an
//! [`hifi_app::Actor`] and makes one call into [`hifi_app::Project`] — the
//! same application layer the CLI uses, so the API can be no more
//! permissive than the CLI, and roles are checked there, once. The
//! application layer is synchronous: calls run on tokio's blocking pool
//! with a project from a small pool of opened ones.
//!
//! # Layout
//!
//! - [`api`]: the routes of `/api/v1` and the OpenAPI document generated
//!   from them (utoipa).
//! - `auth.rs`: bearer tokens (or a session cookie) into actors; refusing
//!   tokens in URLs; holding back addresses that keep failing.
//! - `session.rs`: dashboard sessions — a token traded for an HttpOnly
//!   cookie, its hash kept with the token's name, role and expiry; writes
//!   with the cookie must come from this server's Origin.
//! - `dashboard/`: the web dashboard at `/` — a shell rendered here, one
//!   small script and a stylesheet, embedded in the binary.
//! - `body.rs`: strict, bounded JSON request bodies.
//! - [`problem`]: errors as `application/problem+json` with a stable code.
//! - `pool.rs`: opened projects, reused across requests.
//! - `state.rs`: what handlers share, and the feed of new events.
//! - `metrics.rs`: `/metrics` (Prometheus text).
//! - `listen.rs`: the accept loop, plain or TLS (rustls, ring), and
//!   graceful shutdown.
//! - [`client`]: the typed client of this API the remote CLI uses, over a
//!   small HTTP/1 client ([`client::http`]) that webhooks use too.
//! - [`notify`]: webhooks — delivering the event log to `[[notify]]`
//!   targets at least once, with a persisted cursor and retries.

#![forbid(unsafe_code)]

pub mod api;
mod auth;
mod body;
pub mod client;
mod dashboard;
mod listen;
mod metrics;
pub mod notify;
mod pool;
pub mod problem;
mod session;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hifi_core::clock::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;

pub use auth::{MAX_FAILURES, WINDOW_MS};
pub use body::MAX_BODY;
pub use listen::Listener;
pub use metrics::Metrics;

use crate::auth::Authed;
use crate::problem::Problem;
use crate::state::{AppState, EventFeed};

/// How the server runs.
pub struct Options {
    /// The project's root (or any directory in it).
    pub dir: PathBuf,
    /// The clock operations and token expiry read.
    pub clock: Arc<dyn Clock>,
    /// Metrics shared with the notifier.
    pub metrics: Arc<Metrics>,
    /// `[server] url`: where users reach the server through a reverse
    /// proxy; the dashboard's writes must come from that origin.
    pub public_url: Option<String>,
}

impl Options {
    /// The project in `dir`, on the system clock.
    pub fn new(dir: &Path) -> Options {
        Options {
            dir: dir.to_path_buf(),
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::new()),
            public_url: None,
        }
    }
}

/// The OpenAPI document of the API, as JSON.
pub fn openapi_json() -> String {
    let (_, doc) = api::routes();
    doc.to_pretty_json().unwrap_or_default()
}

/// The whole application: `/api/v1`, the dashboard and its sessions,
/// `/healthz`, `/metrics`.
fn app(state: Arc<AppState>) -> axum::Router {
    let (api, _) = api::routes();
    axum::Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/app.css", get(dashboard::style))
        .route("/session", post(session::sign_in).delete(session::sign_out))
        .route("/session/logout", post(session::sign_out))
        .route("/api/v1/openapi.json", get(openapi))
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(auth::no_token_in_query))
        .layer(middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then lets
/// requests in flight finish (event streams end at once).
pub async fn serve(
    options: Options,
    listener: Listener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let layout = hifi_core::Layout::new(&options.dir);
    let (_, doc) = api::routes();
    let state = Arc::new(AppState {
        pool: Arc::new(pool::Pool::new(options.dir.clone(), options.clock.clone())),
        limiter: auth::Limiter::new(options.clock.clone()),
        metrics: options.metrics,
        events: EventFeed::start(layout.db(), shutdown.clone()),
        shutdown: shutdown.clone(),
        clock: options.clock.clone(),
        openapi: doc.to_pretty_json().unwrap_or_default(),
        sessions: session::Sessions::new(options.clock.clone()),
        // Behind an https proxy the browser's side is https too.
        secure: listener.is_tls()
            || options
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        public_url: options.public_url.clone(),
        writes: tokio::sync::Mutex::new(()),
    });
    // Browsers signed in before a restart stay signed in.
    match state.pool.run(|p| p.live_sessions()).await {
        Ok(rows) => state.sessions.restore(rows),
        Err(problem) => tracing::warn!(
            reason = problem.detail,
            "the dashboard's sessions could not be read; browsers sign in again"
        ),
    }
    listen::run(listener, app(state), shutdown).await
}

async fn measure(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // A label per method name a client makes up would grow the metrics
    // without bound: the ones the API answers are named, the rest "other".
    let method = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    s.metrics.request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn openapi(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.clone(),
    )
        .into_response()
}

async fn healthz() -> axum::Json<api::types::Health> {
    axum::Json(api::types::Health {
        status: "ok".into(),
    })
}

async fn metrics(State(s): State<Arc<AppState>>, Authed(actor): Authed) -> Response {
    match s.pool.run(move |p| p.counts(&actor)).await {
        Ok(counts) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.render(&counts),
        )
            .into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn not_found(req: Request) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "nothing is served at {}; see /api/v1/openapi.json",
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(req: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not served at {}", req.method(), req.uri().path()),
    )
}
