//! Who is asking: `Authorization: Bearer <token>` (or a dashboard
//! session's cookie, see `session.rs`) turned into the [`Actor`] the
//! application layer checks roles against. Without a valid
//! token the answer is 401; a token in the query string (where logs and
//! browser histories keep it) is refused outright. Failed attempts are
//! logged — the client's address and why, never the secret — and an
//! address that keeps failing is answered 429 for a while.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hifi_app::Actor;
use hifi_core::clock::Clock;

use crate::problem::Problem;
use crate::state::AppState;

/// The address a connection came from (set per connection by the listener).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The caller, authenticated.
#[derive(Debug, Clone)]
pub struct Authed(pub Actor);

/// Failed authentications an address may make in one window.
pub const MAX_FAILURES: u32 = 10;
/// The window, in ms.
pub const WINDOW_MS: i64 = 60_000;

/// Counts failed authentications per client address.
pub struct Limiter {
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl Limiter {
    /// A limiter reading `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Limiter {
        Limiter {
            clock,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// When `ip` may try again (unix ms), if it is held back now.
    pub fn held_until(&self, ip: IpAddr) -> Option<i64> {
        let now = self.clock.now_ms();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(&ip)
            .filter(|(start, count)| *count >= MAX_FAILURES && now < start + WINDOW_MS)
            .map(|(start, _)| start + WINDOW_MS)
    }

    /// What a failed attempt from `ip` is answered: `problem` (the attempt
    /// counted), or 429 once the address is held back. Only failures are
    /// held back: a valid token or session always passes, so one client
    /// guessing behind a shared address (a NAT, a reverse proxy) cannot
    /// lock out everyone else behind it.
    pub fn refuse(&self, ip: IpAddr, problem: Problem) -> Problem {
        if let Some(until) = self.held_until(ip) {
            let wait = (until - self.clock.now_ms()).max(1000) / 1000;
            return Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                format!("too many failed authentications from {ip}; try again in {wait} s"),
            );
        }
        self.failed(ip);
        problem
    }

    /// Notes a failed attempt from `ip`.
    fn failed(&self, ip: IpAddr) {
        let now = self.clock.now_ms();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: old windows go once the map grows.
        if failures.len() > 10_000 {
            failures.retain(|_, (start, _)| now < *start + WINDOW_MS);
        }
        let entry = failures.entry(ip).or_insert((now, 0));
        if now >= entry.0 + WINDOW_MS {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// Query parameters that would carry a token.
const TOKEN_PARAMS: [&str; 5] = ["token", "access_token", "api_key", "apikey", "bearer"];

/// Refuses any request that carries a token in its query string, before it
/// reaches a handler (and whatever it would log).
pub async fn no_token_in_query(req: Request, next: Next) -> Response {
    if let Some(query) = req.uri().query() {
        let carries = query.split('&').any(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            TOKEN_PARAMS.contains(&name.to_ascii_lowercase().as_str())
                || value.starts_with("hifi_")
                || name.starts_with("hifi_")
        });
        if carries {
            tracing::warn!(
                path = req.uri().path(),
                "refused a request with a token in its query string"
            );
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "token_in_query",
                "tokens are never accepted in the URL; send it as `Authorization: Bearer <token>`",
            )
            .with_hint("revoke that token (`hifi token revoke NAME`): URLs end up in logs")
            .into_response();
        }
    }
    next.run(req).await
}

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let ip = parts
            .extensions
            .get::<Peer>()
            .map(|p| p.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        // A browser signed in to the dashboard sends its session cookie
        // instead of a token.
        if parts.headers.get(header::AUTHORIZATION).is_none()
            && let Some(id) = crate::session::cookie_id(&parts.headers)
        {
            return crate::session::actor(state, parts, &id, ip)
                .await
                .map(Authed);
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            });
        let Some(secret) = presented else {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send a token: `Authorization: Bearer <token>`",
            )
            .with_hint("an admin creates one with `hifi token create NAME --role ROLE`"));
        };
        match state.pool.run(move |p| p.authenticate(&secret)).await {
            Ok(actor) => Ok(Authed(actor)),
            Err(problem) => {
                if problem.status() != StatusCode::UNAUTHORIZED {
                    return Err(problem);
                }
                state.metrics.auth_failed();
                tracing::warn!(
                    client = %ip,
                    path = parts.uri.path(),
                    reason = problem.detail,
                    "failed authentication"
                );
                Err(state.limiter.refuse(ip, problem))
            }
        }
    }
}
