//! The web dashboard at `/`: a page shell rendered here, one small script
//! (`app.js`) and one stylesheet (`app.css`), all compiled into the binary
//! with `include_str!` — no CDN, no npm build, nothing fetched from the
//! internet.
//!
//! Why so lean: the dashboard shows what the API already answers (the
//! board, the pipeline, canaries, releases, history, diffs) and follows
//! the event stream; a few hundred lines of plain JavaScript against the
//! API do that, load in one round trip of three small files, need no
//! toolchain beside cargo, and leave nothing to audit but what is here.
//! The script draws the canary charts as inline SVG itself.
//!
//! Without a session the shell is the sign-in form (`POST /session`); the
//! token typed there is traded for an HttpOnly cookie and never kept by
//! the page. No page renders a secret. Every page is sent with a strict
//! Content-Security-Policy (scripts and styles from this server only).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::session;
use crate::state::AppState;

/// The script.
const APP_JS: &str = include_str!("app.js");
/// The stylesheet.
const APP_CSS: &str = include_str!("app.css");

/// What every page and asset is sent with.
fn harden(mut r: Response, cache: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it Chromium sends `Origin: null` with the
    // page's own writes, which the Origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page.
pub fn html(status: StatusCode, body: String) -> Response {
    harden(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        "no-store",
    )
}

const HEAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hifi</title><link rel="stylesheet" href="/assets/app.css">
<link rel="icon" href="data:,">"#;

/// The sign-in page, with why the last attempt failed.
pub fn sign_in_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" id="sign-in-error">{}</p>"#, escape(e)))
        .unwrap_or_default();
    format!(
        r#"{HEAD}</head><body class="sign-in">
<main><h1>hifi</h1>
<form method="post" action="/session" id="sign-in">
<label for="token">API token</label>
<input type="password" id="token" name="token" autocomplete="off" required autofocus>
<button type="submit">Sign in</button>
{error}
<p class="hint">An admin creates one with <code>hifi token create NAME --role ROLE</code>.
The token is exchanged for a session cookie; this page never keeps it.</p>
</form></main></body></html>"#
    )
}

/// The dashboard's shell for a signed-in user.
fn shell(name: &str, role: &str) -> String {
    let (name, role) = (escape(name), escape(role));
    // The script listens for every kind of event by its SSE name.
    let events = hifi_core::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r##"{HEAD}<script src="/assets/app.js" defer></script></head>
<body data-events="{events}">
<header><span class="brand">hifi</span>
<nav><a href="#/board">Board</a><a href="#/pipeline">Pipeline</a><a href="#/canary">Canary</a><a href="#/releases">Releases</a><a href="#/history">History</a><a href="#/diff">Diff</a></nav>
<span class="who" id="who">{name} <em>{role}</em></span>
<span id="live" class="live" title="live updates">●</span>
<form method="post" action="/session/logout"><button type="submit" id="sign-out">Sign out</button></form>
</header>
<main id="page"><p class="muted">Loading…</p></main>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<menu><button value="cancel" id="confirm-cancel">Cancel</button><button value="ok" id="confirm-ok" class="primary">Confirm</button></menu></form></dialog>
<div id="toast" role="status"></div>
</body></html>"##
    )
}

/// `GET /`: the dashboard, or the sign-in form without a session.
pub async fn index(State(s): State<Arc<AppState>>, req: Request) -> Response {
    if let Some(id) = session::cookie_id(req.headers())
        && let Some(found) = s.sessions.get(&id)
    {
        let name = found.token.clone();
        if let Ok(actor) = s.pool.run(move |p| p.token_actor(&name)).await {
            return html(StatusCode::OK, shell(&actor.name, actor.role.as_str()));
        }
        s.sessions.end(&id);
    }
    html(StatusCode::OK, sign_in_page(None))
}

/// `GET /assets/app.js`.
pub async fn script() -> Response {
    harden(
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            APP_JS,
        )
            .into_response(),
        "no-cache",
    )
}

/// `GET /assets/app.css`.
pub async fn style() -> Response {
    harden(
        ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response(),
        "no-cache",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert!(shell("<b>", "viewer").contains("&lt;b&gt;"));
    }
}
