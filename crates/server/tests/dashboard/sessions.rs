//! Dashboard sessions over real HTTP: a token traded for a strict,
//! HttpOnly cookie; the cookie reads, and writes only from this server's
//! Origin; revoking the token or signing out ends it; no page shows a
//! secret.

use serde_json::json;

use crate::util::{Answer, Server, root};

/// `POST /session` with `token` as JSON.
async fn post_token(s: &Server, token: &str) -> Answer {
    let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
    s.raw(
        "POST",
        "/session",
        None,
        &[("content-type", "application/json")],
        &body,
    )
    .await
}

/// `POST /session` with `token` as the sign-in page's form sends it.
async fn post_form(s: &Server, token: &str) -> Answer {
    s.raw(
        "POST",
        "/session",
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={token}").as_bytes(),
    )
    .await
}

/// Signs in with `token` (JSON); returns the `Set-Cookie` line.
async fn sign_in(s: &Server, token: &str) -> String {
    let answer = post_token(s, token).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(!answer.text.contains(token), "the secret came back");
    answer.headers["set-cookie"].to_str().unwrap().to_string()
}

/// The `name=value` part of a `Set-Cookie` line.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

/// Asserts that `cookie` no longer reads anything.
async fn assert_signed_out(s: &Server, cookie: &str) {
    with_cookie(s, "GET", "/api/v1/board", cookie, &[])
        .await
        .problem(401, "unauthenticated");
}

async fn with_cookie(
    s: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut headers = vec![("cookie", cookie), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let body: &[u8] = if method == "GET" { b"" } else { b"{}" };
    s.raw(method, path, None, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_httponly_cookie_with_a_random_id() {
    let s = Server::start().await;
    let line = sign_in(&s, &s.viewer).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(line.contains(attribute), "{line}");
    }
    assert!(!line.contains("Secure"), "plain http: {line}");
    let value = pair(&line);
    let id = value.strip_prefix("hifi_session=").unwrap();
    assert_eq!(id.len(), 64, "{id}");
    assert!(!s.viewer.contains(id) && !id.contains(&s.viewer));
    let again = pair(&sign_in(&s, &s.viewer).await);
    assert_ne!(value, again, "each session has an id of its own");

    // The form the sign-in page posts is answered with the dashboard.
    let form = post_form(&s, &s.viewer).await;
    assert_eq!(form.status, 303);
    assert_eq!(form.headers["location"], "/");
    assert!(
        form.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_counted_like_a_bearer_failure() {
    let s = Server::start().await;
    let (head, last) = s.viewer.split_at(s.viewer.len() - 1);
    let forged = format!("{head}{}", if last == "0" { "1" } else { "0" });
    let refused = post_token(&s, &forged).await;
    assert!(refused.headers.get("set-cookie").is_none());
    assert!(!refused.text.contains(&forged));
    refused.problem(401, "unauthenticated");
    let page = post_form(&s, &forged).await;
    assert_eq!(page.status, 401);
    assert!(page.text.contains("id=\"sign-in\""), "{}", page.text);
    assert!(!page.text.contains(&forged), "the page echoed the token");
    for _ in 0..hifi_server::MAX_FAILURES {
        post_token(&s, &forged).await;
    }
    // Wrong tokens are held back now; a right one still signs in (one
    // guesser behind a shared address locks out no one else).
    post_token(&s, &forged)
        .await
        .problem(429, "too_many_failures");
    let signed_in = post_token(&s, &s.viewer).await;
    assert!(
        signed_in.headers.get("set-cookie").is_some(),
        "{}: {}",
        signed_in.status,
        signed_in.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_grants_reads_and_the_dashboard() {
    let s = Server::start().await;
    let cookie = pair(&sign_in(&s, &s.viewer).await);
    let board = with_cookie(&s, "GET", "/api/v1/board", &cookie, &[])
        .await
        .expect(200);
    assert!(board["stages"].is_array());
    let me = with_cookie(&s, "GET", "/api/v1/me", &cookie, &[])
        .await
        .expect(200);
    assert_eq!(me["name"], "vic");
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["may"]["move_cards"], false);
    assert_eq!(me["may"]["deploy"], json!([]));

    let shell = with_cookie(&s, "GET", "/", &cookie, &[]).await;
    assert_eq!(shell.status, 200);
    assert!(shell.text.contains("/assets/app.js"), "{}", shell.text);
    assert!(
        shell.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let anonymous = s.raw("GET", "/", None, &[], b"").await;
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.text.contains("id=\"sign-in\""));
    assert!(!anonymous.text.contains("app.js"));
    // An unknown session is no session.
    let stale = with_cookie(&s, "GET", "/api/v1/board", "hifi_session=00ff", &[]).await;
    stale.problem(401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_write_needs_this_servers_origin() {
    let s = Server::start().await;
    let cookie = pair(&sign_in(&s, &s.developer).await);
    let add = |origin: Option<&'static str>| {
        let cookie = cookie.clone();
        let s = &s;
        async move {
            let body =
                serde_json::to_vec(&json!({ "id": "PAY-1", "branch": "feature/a" })).unwrap();
            let mut headers = vec![
                ("cookie", cookie.as_str()),
                ("content-type", "application/json"),
            ];
            let own = s.url.clone();
            let origin = origin.map(|o| if o == "own" { own } else { o.to_string() });
            if let Some(o) = &origin {
                headers.push(("origin", o.as_str()));
            }
            s.raw("POST", "/api/v1/cards", None, &headers, &body).await
        }
    };
    add(None).await.problem(403, "bad_origin");
    add(Some("http://evil.example"))
        .await
        .problem(403, "bad_origin");
    add(Some("null")).await.problem(403, "bad_origin");
    let board = s.get("board", &s.viewer).await.expect(200);
    assert!(
        board["cards"].as_array().unwrap().is_empty(),
        "nothing was added: {board}"
    );
    add(Some("own")).await.expect(201);
    // Bearer clients send no Origin and need none.
    s.post(
        "cards/PAY-1/move",
        &s.developer,
        json!({ "stage": "In Dev" }),
    )
    .await
    .expect(200);
    // A viewer's cookie with the right Origin is still a viewer.
    let viewer = pair(&sign_in(&s, &s.viewer).await);
    let origin = s.url.clone();
    with_cookie(
        &s,
        "POST",
        "/api/v1/cards/PAY-1/move",
        &viewer,
        &[("origin", &origin)],
    )
    .await
    .expect(422);
    let body = serde_json::to_vec(&json!({ "stage": "In Test" })).unwrap();
    s.raw(
        "POST",
        "/api/v1/cards/PAY-1/move",
        None,
        &[
            ("cookie", &viewer),
            ("content-type", "application/json"),
            ("origin", &origin),
        ],
        &body,
    )
    .await
    .problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_token_ends_its_sessions_and_logout_ends_one() {
    let s = Server::start().await;
    let vic = pair(&sign_in(&s, &s.viewer).await);
    let dora = pair(&sign_in(&s, &s.developer).await);
    with_cookie(&s, "GET", "/api/v1/board", &vic, &[])
        .await
        .expect(200);
    s.project().revoke_token(&root(), "vic").unwrap();
    let revoked = with_cookie(&s, "GET", "/api/v1/board", &vic, &[]).await;
    assert_eq!(revoked.json["detail"], "token vic was revoked");
    revoked.problem(401, "unauthenticated");
    let page = with_cookie(&s, "GET", "/", &vic, &[]).await;
    assert!(page.text.contains("id=\"sign-in\""));

    // Signing out needs the Origin too (a foreign page must not sign you out).
    with_cookie(
        &s,
        "POST",
        "/session/logout",
        &dora,
        &[("origin", "http://evil.example")],
    )
    .await
    .problem(403, "bad_origin");
    let origin = s.url.clone();
    let out = with_cookie(&s, "POST", "/session/logout", &dora, &[("origin", &origin)]).await;
    assert_eq!(out.status, 200, "{}", out.text);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("hifi_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_signed_out(&s, &dora).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_after_their_lifetime() {
    let s = Server::start().await;
    let cookie = pair(&sign_in(&s, &s.viewer).await);
    s.clock.advance(12 * 3600 * 1000 - 1000);
    with_cookie(&s, "GET", "/api/v1/board", &cookie, &[])
        .await
        .expect(200);
    s.clock.advance(2000);
    assert_signed_out(&s, &cookie).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_its_sessions_but_not_ended_ones() {
    let mut s = Server::start().await;
    let kept = pair(&sign_in(&s, &s.viewer).await);
    let ended = pair(&sign_in(&s, &s.developer).await);
    let origin = s.url.clone();
    let out = with_cookie(
        &s,
        "POST",
        "/session/logout",
        &ended,
        &[("origin", &origin)],
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.text);

    s.restart().await;
    let me = with_cookie(&s, "GET", "/api/v1/me", &kept, &[])
        .await
        .expect(200);
    assert_eq!(me["name"], "vic", "{me}");
    assert_signed_out(&s, &ended).await;
    // Only the ids' hashes are kept: no session id is in the state files.
    let id = kept.strip_prefix("hifi_session=").unwrap();
    for file in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(s.dir.path().join(".hifi").join(file)) {
            assert!(
                !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                "the session id is in {file}"
            );
        }
    }

    // A kept session still ends at its time, restart or not.
    s.clock.advance(12 * 3600 * 1000 + 1000);
    s.restart().await;
    assert_signed_out(&s, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_in_the_query_string_are_still_refused() {
    let s = Server::start().await;
    let cookie = pair(&sign_in(&s, &s.viewer).await);
    let viewer = s.viewer.clone();
    for path in [
        format!("/?token={viewer}"),
        format!("/api/v1/board?access_token={viewer}"),
        format!("/session?token={viewer}"),
    ] {
        let answer = with_cookie(&s, "GET", &path, &cookie, &[]).await;
        assert!(!answer.text.contains(&viewer));
        answer.problem(400, "token_in_query");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_or_asset_shows_a_secret() {
    let s = Server::start().await;
    let secrets = [&s.viewer, &s.developer, &s.approver, &s.operator, &s.admin];
    let cookie = pair(&sign_in(&s, &s.admin).await);
    let mut bodies = Vec::new();
    for path in [
        "/",
        "/assets/app.js",
        "/assets/app.css",
        "/api/v1/me",
        "/api/v1/canary",
    ] {
        let answer = with_cookie(&s, "GET", path, &cookie, &[]).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        bodies.push(answer.text);
    }
    bodies.push(s.raw("GET", "/", None, &[], b"").await.text);
    for body in &bodies {
        for secret in secrets {
            assert!(!body.contains(secret.as_str()), "a page shows a secret");
        }
        assert!(!body.contains(&cookie[13..]), "a page shows the session id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_and_canary_are_in_the_openapi_document() {
    let s = Server::start().await;
    let doc = s
        .raw("GET", "/api/v1/openapi.json", None, &[], b"")
        .await
        .expect(200);
    assert!(doc["paths"]["/api/v1/me"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/canary"]["get"].is_object());
    assert!(doc["components"]["securitySchemes"]["session"].is_object());
    let me = s.get("me", &s.operator).await.expect(200);
    assert_eq!(me["may"]["deploy"], json!(["dev", "prod"]));
    let me = s.get("me", &s.developer).await.expect(200);
    assert_eq!(me["may"]["deploy"], json!(["dev"]));
    assert_eq!(me["may"]["approve"], false);
}

/// Opens `GET /api/v1/events` with `header` (HTTP/1.0: the body runs until
/// the stream closes) and reads the answer's head.
async fn open_stream(s: &Server, header: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /api/v1/events HTTP/1.0\r\nHost: {addr}\r\n{header}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.contains(" 200 ") && head.contains("text/event-stream"),
        "{head}"
    );
    tcp
}

/// Reads until the server closes the stream (within 10 s).
async fn ends(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .expect("the stream was still open after 10 s")
            .unwrap_or(0);
        if n == 0 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_ends_its_open_event_streams() {
    let s = Server::start().await;
    let cookie = pair(&sign_in(&s, &s.viewer).await);
    let by_cookie = open_stream(&s, &format!("Cookie: {cookie}")).await;
    let by_bearer = open_stream(&s, &format!("Authorization: Bearer {}", s.viewer)).await;
    let other = open_stream(&s, &format!("Authorization: Bearer {}", s.developer)).await;
    s.project().revoke_token(&root(), "vic").unwrap();
    ends(by_cookie).await;
    ends(by_bearer).await;
    // Another token's stream goes on: it gets the next event.
    s.post(
        "cards",
        &s.developer,
        json!({ "id": "PAY-1", "branch": "feature/a" }),
    )
    .await
    .expect(201);
    let mut other = other;
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut other, &mut buf),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(n > 0, "the other stream closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_is_the_newest_events_newest_first() {
    let s = Server::start().await;
    s.post(
        "cards",
        &s.developer,
        json!({ "id": "PAY-1", "branch": "feature/a" }),
    )
    .await
    .expect(201);
    s.post(
        "cards/PAY-1/move",
        &s.developer,
        json!({ "stage": "In Dev" }),
    )
    .await
    .expect(200);
    let audit = s.get("audit?limit=2", &s.viewer).await.expect(200);
    let events = audit.as_array().unwrap();
    assert_eq!(events.len(), 2, "{audit}");
    assert_eq!(events[0]["kind"], "card.moved");
    assert_eq!(events[0]["actor"], "dora");
    assert_eq!(events[1]["kind"], "card.added");
    assert!(events[0]["seq"].as_i64() > events[1]["seq"].as_i64());
    let all = s.get("audit", &s.viewer).await.expect(200);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "token.created")
    );
    for bad in [
        "audit?limit=0",
        "audit?limit=501",
        "audit?limit=x",
        "audit?since=1",
    ] {
        s.get(bad, &s.viewer).await.problem(400, "bad_input");
    }
    let doc = s
        .raw("GET", "/api/v1/openapi.json", None, &[], b"")
        .await
        .expect(200);
    assert!(doc["paths"]["/api/v1/audit"]["get"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_reverse_proxy_writes_come_from_the_configured_url() {
    let mut s = Server::start().await;
    s.behind_proxy("https://hifi.example.com").await;
    let line = sign_in(&s, &s.developer).await;
    assert!(line.contains("Secure"), "users reach it over https: {line}");
    let cookie = pair(&line);
    let add = |origin: String| {
        let cookie = cookie.clone();
        let s = &s;
        async move {
            let body =
                serde_json::to_vec(&json!({ "id": "PAY-1", "branch": "feature/a" })).unwrap();
            let headers = [
                ("cookie", cookie.as_str()),
                ("content-type", "application/json"),
                ("origin", origin.as_str()),
            ];
            s.raw("POST", "/api/v1/cards", None, &headers, &body).await
        }
    };
    // The address it listens on is not where users are.
    add(s.url.clone()).await.problem(403, "bad_origin");
    add("http://hifi.example.com".into())
        .await
        .problem(403, "bad_origin");
    add("https://hifi.example.com".into()).await.expect(201);
}
