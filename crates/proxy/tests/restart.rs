//! A restarted proxy serves exactly the tables it served before.

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_tables_from_the_state_dir() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[&blue]));
    s.candidate = candidate("green", &[&green], 50.0);
    let t = table("prod", port, vec![s]);
    proxy.put(&t).await;
    let mut t2 = table(
        "dev",
        loopback_port(),
        vec![service(
            "catalog",
            "/",
            loopback_port(),
            slot("green", &[&green]),
        )],
    );
    t2.preview_token = Some("tok".into());
    proxy.put(&t2).await;
    assert!(
        proxy.dir.path().join("state/tables/prod.json").exists(),
        "table persisted before the answer"
    );

    let dir = proxy.stop().await;
    eventually("listener released", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;

    let proxy = TestProxy::start_in(dir, |_| {}).await;
    assert_eq!(
        proxy.admin.tables().await.expect("tables"),
        vec!["dev", "prod"]
    );
    assert_eq!(proxy.admin.get_table("prod").await.expect("get"), Some(t));
    assert_eq!(proxy.admin.get_table("dev").await.expect("get"), Some(t2));
    let u = "user-7";
    let want = if hifi_proxy::bucket(u.as_bytes()) < 5000 {
        "green"
    } else {
        "blue"
    };
    let cookie = format!("hifi-user={u}");
    let r = get_with(port, "/", &[("cookie", cookie.as_str())]).await;
    assert_eq!(
        (r.status, r.backend()),
        (200, want),
        "same user, same slot after restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_proxy_does_not_steal_a_live_admin_socket() {
    let proxy = TestProxy::start().await;
    let opts = test_options(proxy.dir.path());
    let err = hifi_proxy::serve(opts, async {})
        .await
        .expect_err("must refuse");
    assert!(
        err.to_string().contains("in use by another running proxy"),
        "{err}"
    );
    assert!(
        proxy.admin.tables().await.is_ok(),
        "the first proxy still answers"
    );
}
