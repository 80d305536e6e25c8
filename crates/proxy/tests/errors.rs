//! Answers the proxy makes itself: 502, 503, 504, and the retry that
//! avoids a 502 when a pooled connection was closed by the backend.

use bytes::Bytes;
use http_body_util::Full;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backend_is_502_naming_the_service() {
    let proxy = TestProxy::start().await;
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[]));
    // A port nothing listens on (checked free just now).
    s.active.backends = vec![local(loopback_port())];
    proxy.put(&table("prod", port, vec![s])).await;
    let r = get(port, "/").await;
    assert_eq!(r.status, 502);
    assert!(
        r.body.contains("catalog") && r.body.contains("prod"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_path_is_503() {
    let proxy = TestProxy::start().await;
    let blue = Backend::start("blue").await;
    let port = loopback_port();
    proxy
        .put(&table(
            "prod",
            port,
            vec![service(
                "catalog",
                "/catalog",
                loopback_port(),
                slot("blue", &[&blue]),
            )],
        ))
        .await;
    let r = get(port, "/catalogue").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body.trim(), "hifi: no route for /catalogue in prod");
    assert_eq!(get(port, "/catalog/1").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_backend_is_504_after_the_timeout() {
    let proxy =
        TestProxy::start_with(|o| o.upstream_timeout = std::time::Duration::from_millis(300)).await;
    let blue = Backend::start("blue").await;
    let port = loopback_port();
    proxy
        .put(&table(
            "prod",
            port,
            vec![service(
                "catalog",
                "/",
                loopback_port(),
                slot("blue", &[&blue]),
            )],
        ))
        .await;
    let r = get(port, "/hang").await;
    assert_eq!(r.status, 504);
    assert!(r.body.contains("service catalog in prod"), "{}", r.body);
    // The connection to the client stays usable.
    assert_eq!(get(port, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_request_is_retried_once_on_a_fresh_connection() {
    let proxy = TestProxy::start().await;
    let (backend, conns) = closing_backend(true).await;
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[]));
    s.active.backends = vec![backend.to_string()];
    proxy.put(&table("prod", port, vec![s])).await;

    let mut conn = Conn::open(port).await;
    for i in 0..3 {
        let r = conn.get("/").await;
        assert_eq!((r.status, r.body.as_str()), (200, "fresh"), "GET #{i}");
    }
    assert!(conns.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_with_a_body_is_never_replayed() {
    let proxy = TestProxy::start().await;
    // This backend reads each request and closes without answering.
    let (backend, conns) = closing_backend(false).await;
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[]));
    s.active.backends = vec![backend.to_string()];
    proxy.put(&table("prod", port, vec![s])).await;
    let count = || conns.load(std::sync::atomic::Ordering::SeqCst);

    let r = get(port, "/").await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("closed the connection"), "{}", r.body);
    assert_eq!(count(), 2, "a GET is tried twice");
    let post = req("POST", "/echo")
        .body(Full::new(Bytes::from("payload")))
        .expect("req");
    let r = bounded("POST", Conn::open(port).await.send(post))
        .await
        .expect("response");
    assert_eq!(r.status, 502);
    assert_eq!(count(), 3, "a POST with a body is sent once");
}
