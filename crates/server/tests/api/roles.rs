//! Each role allows what DESIGN.md says, over HTTP: 403 with the reason
//! when it does not.

use serde_json::json;

use crate::util::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_everything_and_changes_nothing() {
    let s = Server::start().await;
    for path in [
        "board",
        "cards",
        "environments",
        "environments/dev",
        "environments/dev/history",
        "releases",
        "diff?from=dev&to=prod",
    ] {
        s.get(path, &s.viewer).await.expect(200);
    }
    let refused = s
        .post(
            "cards",
            &s.viewer,
            json!({"id": "A-1", "branch": "feature/a"}),
        )
        .await
        .problem(403, "forbidden");
    assert_eq!(refused["detail"], "vic (viewer) may not change cards");
    assert!(refused["hint"].is_string());
    s.post("environments/dev/compose", &s.viewer, json!({}))
        .await
        .problem(403, "forbidden");
    s.post("environments/dev/deploy", &s.viewer, json!({}))
        .await
        .problem(403, "forbidden");
    s.post("environments/prod/approve", &s.viewer, json!({}))
        .await
        .problem(403, "forbidden");
    s.get("tokens", &s.viewer).await.problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_deploys_where_no_approval_is_needed_only() {
    let s = Server::start().await;
    s.post(
        "cards",
        &s.developer,
        json!({"id": "A-1", "branch": "feature/a"}),
    )
    .await
    .expect(201);
    s.post("environments/dev/compose", &s.developer, json!({}))
        .await
        .expect(200);
    s.post("environments/dev/deploy", &s.developer, json!({}))
        .await
        .expect(200);
    let refused = s
        .post(
            "environments/prod/promote",
            &s.developer,
            json!({"from": "dev"}),
        )
        .await
        .problem(403, "forbidden");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("requires approvals")
    );
    s.post("environments/prod/rollback", &s.developer, json!({}))
        .await
        .problem(403, "forbidden");
    s.post("environments/prod/approve", &s.developer, json!({}))
        .await
        .problem(403, "forbidden");
    s.post(
        "tokens",
        &s.developer,
        json!({"name": "x", "role": "admin"}),
    )
    .await
    .problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_signs_off_an_operator_deploys_everywhere_an_admin_manages_tokens() {
    let s = Server::start().await;
    s.verified_in_dev();
    s.post("environments/prod/approve", &s.approver, json!({}))
        .await
        .expect(200);
    s.post("environments/dev/deploy", &s.approver, json!({}))
        .await
        .problem(403, "forbidden");
    s.post("cards/A-1/move", &s.approver, json!({"stage": "in-dev"}))
        .await
        .problem(403, "forbidden");

    let started = s
        .post(
            "environments/prod/promote",
            &s.operator,
            json!({"from": "dev"}),
        )
        .await
        .expect(200);
    assert_eq!(started["deployment"]["actor"], "otto");
    s.get("tokens", &s.operator).await.problem(403, "forbidden");
    s.get("state/backups", &s.operator)
        .await
        .problem(403, "forbidden");
    s.get("tokens", &s.admin).await.expect(200);
}
