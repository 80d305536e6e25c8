//! Four-eyes over HTTP: the promoter's own sign-off never counts, each
//! person counts once, and approvals sent at once are each recorded.

use serde_json::json;

use crate::util::{Server, root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_promoters_own_sign_off_does_not_count_someone_elses_does() {
    let s = Server::start().await;
    s.verified_in_dev();
    let approved = s
        .post("environments/prod/approve", &s.operator, json!({}))
        .await
        .expect(200);
    assert_eq!(approved["four_eyes"], true);
    let refused = s
        .post(
            "environments/prod/promote",
            &s.operator,
            json!({"from": "dev"}),
        )
        .await
        .problem(409, "needs_approval");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("otto's own sign-off does not count"),
        "{refused}"
    );
    assert!(
        refused["hint"]
            .as_str()
            .unwrap()
            .contains("someone other than otto")
    );
    s.post("environments/prod/approve", &s.approver, json!({}))
        .await
        .expect(200);
    s.post(
        "environments/prod/promote",
        &s.operator,
        json!({"from": "dev"}),
    )
    .await
    .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_sent_at_once_are_each_counted_once() {
    let s = Server::start().await;
    let release = s.verified_in_dev();
    let mut p = s.project();
    let tokens: Vec<String> = (0..8)
        .map(|i| {
            p.create_token(&root(), &format!("po{i}"), hifi_app::Role::Approver, None)
                .unwrap()
                .secret
        })
        .collect();
    let mut sends = Vec::new();
    for token in tokens.iter().chain(std::iter::repeat_n(&s.approver, 6)) {
        sends.push(s.post(
            "environments/prod/approve",
            token,
            json!({"release": release}),
        ));
    }
    let answers = futures_util::future::join_all(sends).await;
    let mut new = 0;
    for answer in answers {
        let json = answer.expect(200);
        new += usize::from(json["new"] == true);
    }
    assert_eq!(new, 9, "each person's first sign-off is new, once");
    let detail = s
        .get(&format!("releases/{release}"), &s.viewer)
        .await
        .expect(200);
    assert_eq!(detail["approvals"].as_array().unwrap().len(), 9);
    let status = s.get("environments/prod", &s.viewer).await.expect(200);
    assert_eq!(status["environments"][0]["approvals"]["have"], 9);
}
