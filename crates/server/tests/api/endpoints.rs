//! Every endpoint, as the CLI's operations and views, answering the
//! application layer's types.

use serde_json::json;

use crate::util::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_added_moved_listed_and_removed_recording_the_tokens_name() {
    let s = Server::start().await;
    let added = s
        .post(
            "cards",
            &s.developer,
            json!({"id": "PAY-1", "branch": "feature/a", "title": "Pay"}),
        )
        .await
        .expect(201);
    assert_eq!(added["card"]["stage"], "Ready for Dev");
    assert_eq!(added["branch_exists"], true);
    let moved = s
        .post("cards/PAY-1/move", &s.developer, json!({"stage": "in-dev"}))
        .await
        .expect(200);
    assert_eq!(
        (moved["from"].as_str(), moved["card"]["stage"].as_str()),
        (Some("Ready for Dev"), Some("In Dev"))
    );
    assert_eq!(moved["card"]["environments"], json!(["dev"]));
    let cards = s.get("cards", &s.viewer).await.expect(200);
    assert_eq!(cards[0]["id"], "PAY-1");
    let board = s.get("board", &s.viewer).await.expect(200);
    assert_eq!(board["stages"][1]["cards"], json!(["PAY-1"]));

    // Every event names the token that did it.
    let events = s
        .project()
        .events_after(&crate::util::root(), 0, 100)
        .unwrap();
    let moves: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.as_str().starts_with("card."))
        .map(|e| e.actor.as_str())
        .collect();
    assert_eq!(moves, ["dora", "dora"]);

    let removed = s.delete("cards/PAY-1", &s.developer).await.expect(200);
    assert_eq!(removed, json!({"removed": "PAY-1"}));
    s.delete("cards/PAY-1", &s.developer)
        .await
        .problem(404, "unknown_card");
    s.post(
        "cards",
        &s.developer,
        json!({"id": "PAY-2", "branch": "feature/a"}),
    )
    .await
    .expect(201);
    s.post(
        "cards",
        &s.developer,
        json!({"id": "PAY-2", "branch": "feature/a"}),
    )
    .await
    .problem(409, "card_exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_are_composed_deployed_and_followed() {
    let s = Server::start().await;
    let composed = s
        .post("environments/dev/compose", &s.developer, json!({}))
        .await
        .expect(200);
    assert_eq!(composed["outcome"], "new-release");
    assert_eq!(composed["branch"], "hifi/env/dev");
    let release = composed["release"]["id"].as_str().unwrap().to_string();
    let started = s
        .post("environments/dev/deploy", &s.developer, json!({}))
        .await
        .expect(200);
    assert_eq!(started["deployment"]["actor"], "dora");
    assert_eq!(started["control_plane_running"], false);
    let id = started["deployment"]["id"].as_i64().unwrap();
    let progress = s
        .get(&format!("deployments/{id}"), &s.viewer)
        .await
        .expect(200);
    assert_eq!(progress["deployment"]["state"], "pending");
    assert!(!progress["events"].as_array().unwrap().is_empty());
    s.get("deployments/999", &s.viewer)
        .await
        .problem(404, "store");

    let status = s.get("environments", &s.viewer).await.expect(200);
    assert_eq!(status["environments"].as_array().unwrap().len(), 2);
    assert_eq!(status["environments"][0]["deployment"]["id"], id);
    let dev = s.get("environments/dev", &s.viewer).await.expect(200);
    assert_eq!(dev["environments"][0]["env"], "dev");
    s.get("environments/qa", &s.viewer)
        .await
        .problem(404, "unknown_environment");
    let history = s
        .get("environments/dev/history", &s.viewer)
        .await
        .expect(200);
    assert_eq!(history[0]["deployment"]["id"], id);

    // A second deployment while one is in progress is refused; so is a
    // canary action on a blue-green deployment, and a rollback with nothing
    // to go back to.
    s.post(
        "environments/dev/deploy",
        &s.developer,
        json!({"release": &release[..8]}),
    )
    .await
    .problem(409, "deployment_in_progress");
    s.post("environments/dev/canary/pause", &s.developer, json!({}))
        .await
        .problem(409, "not_a_canary");
    let aborted = s
        .post("environments/dev/canary/abort", &s.developer, json!({}))
        .await
        .expect(200);
    assert!(
        aborted["message"]
            .as_str()
            .unwrap()
            .contains("abort requested by dora")
    );
    s.post("environments/dev/canary/jump", &s.developer, json!({}))
        .await
        .problem(400, "bad_input");
    s.post("environments/prod/rollback", &s.operator, json!({}))
        .await
        .problem(409, "nothing_to_roll_back");
    s.post(
        "environments/prod/promote",
        &s.operator,
        json!({"from": "dev"}),
    )
    .await
    .problem(409, "nothing_live");
    s.post(
        "environments/dev/deploy",
        &s.developer,
        json!({"require_running": true}),
    )
    .await
    .problem(409, "not_running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_show_their_fidelity_chain_and_can_be_rejected() {
    let s = Server::start().await;
    let release = s.verified_in_dev();
    let list = s.get("releases", &s.viewer).await.expect(200);
    assert_eq!(list[0]["id"], release);
    assert_eq!(list[0]["live_in"], json!(["dev"]));
    let detail = s
        .get(&format!("releases/{}", &release[..6]), &s.viewer)
        .await
        .expect(200);
    assert_eq!(detail["verified"][0]["env"], "dev");
    assert!(
        detail["services"][0]["digest"].is_string() || detail["services"][0]["digest"].is_null()
    );
    assert_eq!(detail["compositions"][0]["env"], "dev");
    s.get("releases/abc", &s.viewer)
        .await
        .problem(404, "unknown_release");

    let approved = s
        .post("environments/prod/approve", &s.approver, json!({}))
        .await
        .expect(200);
    assert_eq!(
        (
            approved["approver"].as_str(),
            approved["approvals"].as_i64()
        ),
        (Some("po"), Some(1))
    );
    // An approver signs off; taking a release out of reach is an operator's.
    s.post(
        &format!("releases/{release}/reject"),
        &s.approver,
        json!({"reason": "wrong prices"}),
    )
    .await
    .problem(403, "forbidden");
    let rejected = s
        .post(
            &format!("releases/{release}/reject"),
            &s.operator,
            json!({"reason": "wrong prices"}),
        )
        .await
        .expect(200);
    assert_eq!(rejected["live_in"], json!(["dev"]));
    s.post(
        &format!("releases/{release}/reject"),
        &s.operator,
        json!({"reason": " "}),
    )
    .await
    .problem(400, "bad_input");
    s.post(
        "environments/prod/promote",
        &s.operator,
        json!({"from": "dev"}),
    )
    .await
    .problem(409, "rejected");

    let diff = s.get("diff?from=dev&to=prod", &s.viewer).await.expect(200);
    assert_eq!(
        (diff["a"].as_str(), diff["state_a"].as_str()),
        (Some("dev"), Some("live"))
    );
    assert_eq!(diff["release_b"], json!(null));
    s.get("diff?from=dev", &s.viewer)
        .await
        .problem(400, "bad_input");
    s.get("diff?from=dev&to=nowhere", &s.viewer)
        .await
        .problem(404, "unknown_environment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_backups_are_an_admins() {
    let s = Server::start().await;
    let created = s
        .post(
            "tokens",
            &s.admin,
            json!({"name": "ci", "role": "developer", "expires": "90d"}),
        )
        .await
        .expect(201);
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(created["expires_at"].is_i64());
    s.get("board", &secret).await.expect(200);
    let tokens = s.get("tokens", &s.admin).await.expect(200);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("secret").is_none() && t.get("hash").is_none())
    );
    assert!(tokens.to_string().find(&secret).is_none());
    s.post("tokens", &s.admin, json!({"name": "ci", "role": "viewer"}))
        .await
        .problem(409, "token_exists");
    s.post("tokens", &s.admin, json!({"name": "x", "role": "root"}))
        .await
        .problem(422, "invalid_body");
    s.post(
        "tokens",
        &s.admin,
        json!({"name": "x", "role": "viewer", "expires": "soon"}),
    )
    .await
    .problem(400, "bad_input");
    let revoked = s.delete("tokens/ci", &s.admin).await.expect(200);
    assert_eq!(revoked["new"], true);
    s.get("board", &secret)
        .await
        .problem(401, "unauthenticated");
    s.delete("tokens/nobody", &s.admin)
        .await
        .problem(404, "unknown_token");

    assert_eq!(
        s.get("state/backups", &s.admin).await.expect(200),
        json!([])
    );
    s.post("state/restore", &s.admin, json!({}))
        .await
        .problem(409, "already_running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_the_openapi_document_are_served() {
    let s = Server::start().await;
    let health = s.raw("GET", "/healthz", None, &[], b"").await;
    assert_eq!(
        (health.status.as_u16(), health.json["status"].as_str()),
        (200, Some("ok"))
    );

    let doc = s.raw("GET", "/api/v1/openapi.json", None, &[], b"").await;
    assert_eq!(doc.status.as_u16(), 200);
    let paths = doc.json["paths"].as_object().unwrap();
    for path in [
        "/api/v1/board",
        "/api/v1/cards",
        "/api/v1/cards/{id}/move",
        "/api/v1/cards/{id}",
        "/api/v1/environments",
        "/api/v1/environments/{env}",
        "/api/v1/environments/{env}/history",
        "/api/v1/environments/{env}/compose",
        "/api/v1/environments/{env}/deploy",
        "/api/v1/environments/{env}/promote",
        "/api/v1/environments/{env}/approve",
        "/api/v1/environments/{env}/rollback",
        "/api/v1/environments/{env}/canary/{action}",
        "/api/v1/releases",
        "/api/v1/releases/{id}",
        "/api/v1/releases/{id}/reject",
        "/api/v1/diff",
        "/api/v1/events",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert_eq!(
        doc.json["paths"]["/api/v1/board"]["get"]["responses"]["403"]["content"]["application/problem+json"]
            ["schema"]["$ref"],
        "#/components/schemas/Problem"
    );

    s.raw("GET", "/metrics", None, &[], b"")
        .await
        .problem(401, "unauthenticated");
    s.get("board", "not-a-token")
        .await
        .problem(401, "unauthenticated");
    s.verified_in_dev();
    // Made-up methods share one label rather than each adding its own.
    for method in ["X1", "X2"] {
        s.raw(method, "/healthz", None, &[], b"").await;
    }
    let metrics = s.raw("GET", "/metrics", Some(&s.viewer), &[], b"").await;
    assert!(!metrics.text.contains("X1"), "{}", metrics.text);
    assert!(
        metrics.text.contains("method=\"other\""),
        "{}",
        metrics.text
    );
    assert_eq!(metrics.status.as_u16(), 200);
    assert!(
        metrics
            .text
            .contains("hifi_deployments{env=\"dev\",state=\"live\"} 1"),
        "{}",
        metrics.text
    );
    assert!(
        metrics.text.contains("hifi_auth_failures_total 1"),
        "{}",
        metrics.text
    );
    assert!(
        metrics.text.contains("hifi_api_requests_total{"),
        "{}",
        metrics.text
    );

    s.get("nothing/here", &s.viewer)
        .await
        .problem(404, "no_route");
    s.raw("PUT", "/api/v1/board", Some(&s.viewer), &[], b"")
        .await
        .problem(405, "method_not_allowed");
}
