//! Active health checks take a dead backend out of rotation and bring it back.

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_backend_leaves_rotation_and_returns_when_healthy() {
    let proxy = TestProxy::start().await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = loopback_port();
    proxy
        .put(&table(
            "prod",
            port,
            vec![service(
                "catalog",
                "/",
                loopback_port(),
                slot("blue", &[&a, &b]),
            )],
        ))
        .await;
    let healthy = |name: String| {
        let admin = proxy.admin.clone();
        async move {
            admin
                .health("prod")
                .await
                .expect("health")
                .into_iter()
                .find(|r| r.backend == name)
                .map(|r| r.healthy)
        }
    };
    assert_eq!(
        healthy(a.addr_str()).await,
        Some(true),
        "new backends start healthy"
    );

    let a_addr = a.addr;
    a.stop();
    drop(a);
    eventually("a marked unhealthy", || async {
        healthy(a_addr.to_string()).await == Some(false)
    })
    .await;
    let report = proxy.admin.health("prod").await.expect("health");
    let ra = report
        .iter()
        .find(|r| r.backend == a_addr.to_string())
        .expect("a");
    assert!(
        ra.consecutive_failures >= 2 && ra.last_error.is_some(),
        "{ra:?}"
    );
    let mut conn = Conn::open(port).await;
    for _ in 0..20 {
        let r = conn.get("/").await;
        assert_eq!((r.status, r.backend()), (200, "b"));
    }

    let a = Backend::start_on("a", a_addr).await;
    eventually("a healthy again", || async {
        healthy(a_addr.to_string()).await == Some(true)
    })
    .await;
    let mut seen_a = false;
    for _ in 0..20 {
        seen_a |= conn.get("/").await.backend() == "a";
    }
    assert!(seen_a && a.hits() > 0, "a is back in rotation");

    // Failing health answers count as well; with no healthy backend: 503.
    a.set_unhealthy(true);
    b.set_unhealthy(true);
    eventually("both unhealthy", || async {
        proxy
            .admin
            .health("prod")
            .await
            .expect("health")
            .iter()
            .all(|r| !r.healthy)
    })
    .await;
    let r = conn.get("/").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body.trim(),
        "hifi: no healthy backend for service catalog in prod"
    );
}
