//! 401 without a valid token, tokens never in URLs, and an address that
//! keeps failing held back.

use hifi_app::Role;

use crate::util::{Server, root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_a_wrong_one_or_a_malformed_header_is_401() {
    let s = Server::start().await;
    let none = s.raw("GET", "/api/v1/board", None, &[], b"").await;
    assert_eq!(none.headers["www-authenticate"], "Bearer realm=\"hifi\"");
    none.problem(401, "unauthenticated");
    let forged = format!("{}0", &s.viewer[..s.viewer.len() - 1]);
    let wrong = s
        .get("board", &forged)
        .await
        .problem(401, "unauthenticated");
    assert_eq!(wrong["detail"], "unknown token");
    assert!(!wrong.to_string().contains(&forged), "the secret came back");
    s.raw(
        "GET",
        "/api/v1/board",
        None,
        &[("authorization", &format!("Basic {}", s.viewer))],
        b"",
    )
    .await
    .problem(401, "unauthenticated");
    s.get("board", "letmein")
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_are_refused() {
    let s = Server::start().await;
    let mut p = s.project();
    let short = p
        .create_token(
            &root(),
            "temp",
            Role::Viewer,
            Some(std::time::Duration::from_secs(60)),
        )
        .unwrap()
        .secret;
    s.get("board", &short).await.expect(200);
    s.clock.advance(61_000);
    let expired = s.get("board", &short).await.problem(401, "unauthenticated");
    assert_eq!(expired["detail"], "token temp has expired");

    s.get("board", &s.viewer).await.expect(200);
    p.revoke_token(&root(), "vic").unwrap();
    let revoked = s
        .get("board", &s.viewer)
        .await
        .problem(401, "unauthenticated");
    assert_eq!(revoked["detail"], "token vic was revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_string_is_refused_even_with_a_valid_header() {
    let s = Server::start().await;
    for query in [
        format!("token={}", s.viewer),
        format!("access_token={}", s.viewer),
        format!("x={}", s.viewer),
    ] {
        let refused = s
            .raw(
                "GET",
                &format!("/api/v1/board?{query}"),
                Some(&s.viewer),
                &[],
                b"",
            )
            .await
            .problem(400, "token_in_query");
        assert!(
            !refused.to_string().contains(&s.viewer),
            "the secret came back"
        );
    }
    s.raw(
        "GET",
        &format!("/api/v1/openapi.json?token={}", s.viewer),
        None,
        &[],
        b"",
    )
    .await
    .problem(400, "token_in_query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_is_held_back_for_a_while() {
    let s = Server::start().await;
    for _ in 0..hifi_server::MAX_FAILURES {
        s.get(
            "board",
            "hifi_00000000_0000000000000000000000000000000000000000000000000000000000000000",
        )
        .await
        .problem(401, "unauthenticated");
    }
    // Further failures are held back until the window passes; a valid
    // token from the same address (a NAT, a reverse proxy) still passes.
    let wrong = "hifi_00000000_0000000000000000000000000000000000000000000000000000000000000000";
    s.get("board", wrong)
        .await
        .problem(429, "too_many_failures");
    s.get("board", &s.viewer).await.expect(200);
    s.clock.advance(hifi_server::WINDOW_MS);
    s.get("board", wrong).await.problem(401, "unauthenticated");
}
