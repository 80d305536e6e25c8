//! Bad input: malformed JSON, unknown fields, other media types, oversized
//! bodies, ids that try to leave their place. Always a 4xx problem, never
//! a 5xx, and nothing changed.

use serde_json::json;

use crate::util::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_unknown_fields_and_other_media_types_are_refused() {
    let s = Server::start().await;
    let post = |body: &'static [u8], content_type: &'static str| {
        let s = &s;
        async move {
            s.raw(
                "POST",
                "/api/v1/cards",
                Some(&s.developer),
                &[("content-type", content_type)],
                body,
            )
            .await
        }
    };
    post(b"{\"id\": \"A-1\",", "application/json")
        .await
        .problem(400, "malformed_json");
    post(
        b"{\"id\": \"A-1\", \"branch\": \"feature/a\"} trailing",
        "application/json",
    )
    .await
    .problem(400, "malformed_json");
    let unknown = post(
        b"{\"id\": \"A-1\", \"branch\": \"feature/a\", \"colour\": \"red\"}",
        "application/json",
    )
    .await
    .problem(422, "invalid_body");
    assert!(
        unknown["detail"].as_str().unwrap().contains("colour"),
        "{unknown}"
    );
    post(
        b"{\"id\": 7, \"branch\": \"feature/a\"}",
        "application/json",
    )
    .await
    .problem(422, "invalid_body");
    post(b"{}", "application/json")
        .await
        .problem(422, "invalid_body");
    post(b"id=A-1", "application/x-www-form-urlencoded")
        .await
        .problem(415, "unsupported_media_type");
    assert_eq!(
        s.get("cards", &s.viewer).await.expect(200),
        json!([]),
        "something was added"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_unread() {
    let s = Server::start().await;
    let title = "x".repeat(hifi_server::MAX_BODY + 1);
    s.post(
        "cards",
        &s.developer,
        json!({"id": "A-1", "branch": "feature/a", "title": title}),
    )
    .await
    .problem(413, "body_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_try_to_leave_their_place_name_nothing() {
    let s = Server::start().await;
    for id in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "A-1%00",
        "%C0%AE%C0%AE",
        "a%20b",
        "..%5C..%5Cwin",
    ] {
        let answer = s
            .post(
                &format!("cards/{id}/move"),
                &s.developer,
                json!({"stage": "in-dev"}),
            )
            .await;
        assert!(
            matches!(answer.status.as_u16(), 400 | 404),
            "{id}: {} {}",
            answer.status,
            answer.text
        );
        assert_eq!(answer.headers["content-type"], "application/problem+json");
        for path in [
            format!("releases/{id}"),
            format!("environments/{id}"),
            format!("environments/{id}/history"),
        ] {
            let answer = s.get(&path, &s.viewer).await;
            assert!(
                matches!(answer.status.as_u16(), 400 | 404),
                "{path}: {}",
                answer.text
            );
        }
    }
    // A raw traversal never leaves the API either.
    let answer = s
        .raw("GET", "/api/v1/../../etc/passwd", Some(&s.viewer), &[], b"")
        .await;
    assert!(answer.status.is_client_error(), "{}", answer.text);
    s.get("deployments/not-a-number", &s.viewer)
        .await
        .problem(400, "bad_input");
    s.get("deployments/99999999999999999999", &s.viewer)
        .await
        .problem(400, "bad_input");
}
