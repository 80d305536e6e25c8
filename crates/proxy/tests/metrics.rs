//! Windowed statistics and the Prometheus exposition.

use hifi_proxy::StatsQuery;

use crate::util::*;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_requests_and_errors_in_the_window() {
    let proxy = TestProxy::start().await;
    let blue = Backend::start("blue").await;
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[&blue]));
    s.standby = Some(slot("old", &[&blue]));
    proxy.put(&table("prod", port, vec![s])).await;
    let internal = proxy
        .admin
        .get_table("prod")
        .await
        .expect("get")
        .expect("t")
        .services[0]
        .internal_listen
        .clone();
    let internal: u16 = internal
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("port");

    let mut conn = Conn::open(port).await;
    for _ in 0..5 {
        assert_eq!(conn.get("/").await.status, 200);
    }
    // Start the window in a later second than the first batch (resolution is
    // one second), then send a second batch with errors.
    let first_second = now_ms() / 1000;
    eventually("the next second", || async move {
        now_ms() / 1000 > first_second
    })
    .await;
    let since_ms = now_ms();
    for _ in 0..7 {
        assert_eq!(conn.get("/").await.status, 200);
    }
    let mut internal_conn = Conn::open(internal).await;
    for _ in 0..3 {
        // Backend errors (5xx) on the standby slot "old".
        let r = internal_conn
            .get_with("/fail", &[("x-hifi-slot", "old")])
            .await;
        assert_eq!(r.status, 500);
    }

    let q = |slot: &str, since_ms: u64| StatsQuery {
        env: "prod".into(),
        slot: slot.into(),
        service: Some("catalog".into()),
        since_ms,
        slow_ms: None,
    };
    let recent = proxy
        .admin
        .stats(&q("blue", since_ms))
        .await
        .expect("stats");
    assert_eq!((recent.requests, recent.errors), (7, 0), "{recent:?}");
    assert_eq!(recent.error_ratio, 0.0);
    let p50 = recent.p50_ms.expect("p50");
    let p99 = recent.p99_ms.expect("p99");
    assert!(p50 > 0.0 && p99 >= p50 && p99 < 10_000.0, "{recent:?}");
    let all = proxy.admin.stats(&q("blue", 0)).await.expect("stats");
    assert_eq!(all.requests, 12);
    let old = proxy.admin.stats(&q("old", since_ms)).await.expect("stats");
    assert_eq!((old.requests, old.errors, old.error_ratio), (3, 3, 1.0));
    let future = proxy
        .admin
        .stats(&q("blue", now_ms() + 10_000))
        .await
        .expect("stats");
    assert_eq!((future.requests, future.p50_ms), (0, None));
    let mut any_service = q("blue", 0);
    any_service.service = None;
    assert_eq!(
        proxy
            .admin
            .stats(&any_service)
            .await
            .expect("stats")
            .requests,
        12
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_text_has_slot_labelled_series() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[&blue]));
    s.candidate = candidate("green", &[&green], 0.0);
    proxy.put(&table("prod", port, vec![s])).await;
    get(port, "/").await;
    get_with(port, "/", &[("x-hifi-slot", "candidate")]).await;
    get(port, "/other").await;

    let text = proxy.admin.metrics_text().await.expect("metrics");
    for line in [
        r#"hifi_proxy_requests_total{env="prod",service="catalog",slot="blue"} 2"#,
        r#"hifi_proxy_requests_total{env="prod",service="catalog",slot="green"} 1"#,
        r#"hifi_proxy_responses_total{env="prod",service="catalog",slot="blue",class="2xx"} 2"#,
        r#"hifi_proxy_responses_total{env="prod",service="catalog",slot="blue",class="proxy_error"} 0"#,
        r#"hifi_proxy_inflight_requests{env="prod",service="catalog",slot="blue"} 0"#,
        r#"hifi_proxy_request_duration_seconds_count{env="prod",service="catalog",slot="blue"} 2"#,
        r#"hifi_proxy_request_duration_seconds_bucket{le="+Inf",env="prod",service="catalog",slot="green"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(
        text.contains("# TYPE hifi_proxy_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(r#"hifi_proxy_backend_healthy{env="prod",service="catalog",slot="blue""#)
    );
}
