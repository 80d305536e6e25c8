//! Dashboard sessions: a browser trades a token for a session cookie once
//! (`POST /session`), so the token is never kept by the page and every
//! later request — the event stream included — authenticates by cookie.
//!
//! The cookie holds a random session id (`HttpOnly; SameSite=Strict;
//! Path=/`, plus `Secure` under TLS). Only the id's SHA-256 is kept, with
//! the token's name, role and an expiry ([`LIFETIME_MS`]): in memory, and
//! in the state database, so a restarted server signs no one out. Every
//! request checks the token again, so revoking it ends its sessions.
//! A write made with the cookie must carry an `Origin` naming this server;
//! without one, or with another, it is refused (403), whatever SameSite a
//! browser honours.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hifi_app::{Actor, Role};
use hifi_core::clock::Clock;
use hifi_store::SessionRow;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Peer;
use crate::dashboard;
use crate::problem::Problem;
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "hifi_session";
/// How long a session lasts: a working day, then the token is asked again.
pub const LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// Sessions kept at most; expired ones go first, then the oldest.
const MAX_SESSIONS: usize = 10_000;
/// The largest sign-in body read.
const MAX_SIGN_IN: usize = 4096;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token's name (what events record).
    pub token: String,
    /// Its role when the session began.
    pub role: Role,
    /// When the session ends (unix ms).
    pub expires_at: i64,
}

/// The sessions of this server, by the hash of their id.
pub struct Sessions {
    clock: Arc<dyn Clock>,
    by_hash: Mutex<HashMap<String, Session>>,
}

/// What a session is kept under: the SHA-256 of its id, hex.
pub fn key(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Sessions {
    /// No sessions yet, on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Sessions {
        Sessions {
            clock,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session for `actor`; returns its id (the cookie's value),
    /// which is never kept.
    pub fn start(&self, actor: &Actor) -> Result<(String, Session), getrandom::Error> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random)?;
        let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let now = self.clock.now_ms();
        let session = Session {
            token: actor.name.clone(),
            role: actor.role,
            expires_at: now.saturating_add(LIFETIME_MS),
        };
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires_at > now);
            while map.len() >= MAX_SESSIONS {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires_at)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => map.remove(&k),
                    None => break,
                };
            }
        }
        map.insert(key(&id), session.clone());
        Ok((id, session))
    }

    /// Takes back the sessions a previous run of the server kept.
    pub fn restore(&self, rows: Vec<SessionRow>) {
        let now = self.clock.now_ms();
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows.into_iter().take(MAX_SESSIONS) {
            if row.expires_at > now {
                let session = Session {
                    token: row.token,
                    role: row.role,
                    expires_at: row.expires_at,
                };
                map.insert(row.hash, session);
            }
        }
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = key(id);
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&key) {
            Some(s) if s.expires_at > self.clock.now_ms() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session with this id.
    pub fn end(&self, id: &str) {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(id));
    }
}

/// The session id a request's cookie carries.
pub fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Whether `method` changes nothing.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The origin this request was addressed to (`http://host:port`).
fn own_origin(headers: &HeaderMap, uri: &axum::http::Uri, secure: bool) -> Option<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))?;
    let scheme = if secure { "https" } else { "http" };
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// Why a cookie-authenticated write is refused: its `Origin` is missing
/// (when `required`) or names another site than `[server] url` (when
/// set) or the one the request was addressed to.
pub fn bad_origin(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    state: &AppState,
    required: bool,
) -> Option<Problem> {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let Some(origin) = origin else {
        if !required {
            return None;
        }
        return Some(Problem::new(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "a change made with the session cookie must carry an Origin header naming this server",
        )
        .with_hint(
            "scripts and the CLI send `Authorization: Bearer <token>` instead of the cookie",
        ));
    };
    let own = match &state.public_url {
        Some(url) => Some(url.clone()),
        None => own_origin(headers, uri, state.secure),
    };
    match own {
        Some(own) if own == origin.trim().to_ascii_lowercase() => None,
        _ => {
            tracing::warn!(
                origin,
                path = uri.path(),
                "refused a cookie write from another origin"
            );
            Some(Problem::new(
                StatusCode::FORBIDDEN,
                "bad_origin",
                "this change comes from a page of another site; it was refused",
            ))
        }
    }
}

/// The actor of a request's session cookie, if it has a live session
/// whose token is still valid. Writes must come from this server's pages.
pub async fn actor(
    state: &Arc<AppState>,
    parts: &Parts,
    id: &str,
    ip: IpAddr,
) -> Result<Actor, Problem> {
    let Some(session) = state.sessions.get(id) else {
        state.metrics.auth_failed();
        tracing::warn!(client = %ip, path = parts.uri.path(), "unknown or expired session");
        return Err(state.limiter.refuse(
            ip,
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the session has ended; sign in again",
            ),
        ));
    };
    if !is_safe(&parts.method)
        && let Some(problem) = bad_origin(&parts.headers, &parts.uri, state, true)
    {
        return Err(problem);
    }
    let name = session.token.clone();
    match state.pool.run(move |p| p.token_actor(&name)).await {
        Ok(actor) => Ok(actor),
        Err(problem) => {
            if problem.status() == StatusCode::UNAUTHORIZED {
                state.sessions.end(id);
            }
            Err(problem)
        }
    }
}

/// What `POST /session` takes as JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// What `POST /session` answers as JSON.
#[derive(Debug, Serialize)]
struct SignedIn {
    name: String,
    role: Role,
    expires_at: i64,
}

/// The `token` field of an `application/x-www-form-urlencoded` body.
fn form_token(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "token").then(|| percent_decode(value))?
    })
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn set_cookie(value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={value}; Max-Age={max_age_s}; Path=/; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /session`: a token (form field or JSON `{token}`) for a session
/// cookie. A form is answered with the dashboard (303 to `/`) or the
/// sign-in page again; JSON with the session or a problem.
pub async fn sign_in(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let form = is_form(&parts.headers);
    let result = sign_in_inner(&s, &parts, body).await;
    match (result, form) {
        (Ok((id, _)), true) => {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&id, LIFETIME_MS / 1000, s.secure),
            );
            r
        }
        (Ok((id, session)), false) => {
            let mut r = axum::Json(SignedIn {
                name: session.token,
                role: session.role,
                expires_at: session.expires_at,
            })
            .into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&id, LIFETIME_MS / 1000, s.secure),
            );
            r
        }
        (Err(problem), true) => {
            let status = problem.status();
            dashboard::html(status, dashboard::sign_in_page(Some(&problem.detail)))
        }
        (Err(problem), false) => problem.into_response(),
    }
}

async fn sign_in_inner(
    s: &Arc<AppState>,
    parts: &Parts,
    body: axum::body::Body,
) -> Result<(String, Session), Problem> {
    let ip = parts
        .extensions
        .get::<Peer>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    // A page of another site must not sign a browser in as someone else.
    if let Some(problem) = bad_origin(&parts.headers, &parts.uri, s, false) {
        return Err(problem);
    }
    let bytes = axum::body::to_bytes(body, MAX_SIGN_IN).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a sign-in is at most {MAX_SIGN_IN} bytes"),
        )
    })?;
    let token = if is_form(&parts.headers) {
        form_token(&bytes)
    } else {
        serde_json::from_slice::<SignIn>(&bytes)
            .ok()
            .map(|b| b.token)
    };
    let Some(secret) = token.filter(|t| !t.trim().is_empty()) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_input",
            "send the token: a form field `token` or JSON `{\"token\": \"...\"}`",
        ));
    };
    match s.pool.run(move |p| p.authenticate(&secret)).await {
        Ok(actor) => {
            let (id, session) = s.sessions.start(&actor).map_err(Problem::internal)?;
            // Kept, so a restarted server still knows it; a session that
            // cannot be kept is not handed out.
            let (hash, expires_at) = (key(&id), session.expires_at);
            if let Err(problem) = s
                .write(move |p| p.keep_session(&hash, &actor, expires_at))
                .await
            {
                s.sessions.end(&id);
                return Err(problem);
            }
            tracing::info!(token = session.token, client = %ip, "dashboard session started");
            Ok((id, session))
        }
        Err(problem) => {
            if problem.status() != StatusCode::UNAUTHORIZED {
                return Err(problem);
            }
            s.metrics.auth_failed();
            tracing::warn!(client = %ip, reason = problem.detail, "failed sign-in");
            Err(s.limiter.refuse(ip, problem))
        }
    }
}

/// `POST /session/logout` (or `DELETE /session`): ends the session and
/// clears the cookie. A form is sent back to the sign-in page.
pub async fn sign_out(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if let Some(id) = cookie_id(&parts.headers)
        && s.sessions.get(&id).is_some()
    {
        if let Some(problem) = bad_origin(&parts.headers, &parts.uri, &s, true) {
            return problem.into_response();
        }
        s.sessions.end(&id);
        let hash = key(&id);
        if let Err(problem) = s.write(move |p| p.forget_session(&hash)).await {
            // Signed out here; a restarted server would take the session
            // back, but its cookie is cleared below.
            tracing::warn!(
                reason = problem.detail,
                "a signed-out session could not be forgotten"
            );
        }
    }
    let mut r = if is_form(&parts.headers) {
        (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
    } else {
        axum::Json(serde_json::json!({ "signed_out": true })).into_response()
    };
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0, s.secure));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_under_tls() {
        let line = set_cookie("ab", 60, true);
        assert!(
            line.to_str()
                .unwrap()
                .ends_with("HttpOnly; SameSite=Strict; Secure")
        );
    }

    #[test]
    fn form_token_is_percent_decoded() {
        assert_eq!(
            form_token(b"token=hifi_ab%5Fc+d").as_deref(),
            Some("hifi_ab_c d")
        );
        assert_eq!(form_token(b"other=1&token=x").as_deref(), Some("x"));
        assert_eq!(form_token(b"token=%zz"), None);
        assert_eq!(form_token(b"token=%4"), None);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hifi_session=abc; b=2"),
        );
        assert_eq!(cookie_id(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("hifi_session="));
        assert_eq!(cookie_id(&h), None);
    }
}
