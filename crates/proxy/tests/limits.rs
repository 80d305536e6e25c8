//! Limits and timeouts that keep one environment's clients from taking the
//! proxy from the others: header-read timeout from accept, connection cap
//! per listener, keep-alive idle timeout, body timeout between reads,
//! per-service request timeout; and the preview listener's token.

use std::time::{Duration, Instant};

use hifi_proxy::StatsQuery;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::*;

/// Read until the proxy closes; what it sent.
async fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = bounded("closed by the proxy", s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_closed_after_the_header_read_timeout() {
    let (_proxy, _blue, port) =
        one_backend_with(|o| o.header_read_timeout = Duration::from_millis(300)).await;
    // A connection that never sends a byte.
    let t = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    assert_eq!(until_closed(&mut silent).await, "");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // A head that never ends: 408.
    let mut slow = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    let text = until_closed(&mut slow).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Ordinary requests are unaffected.
    assert_eq!(get(port, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_head_that_never_ends_is_408_within_the_header_read_timeout() {
    let (_proxy, _blue, port) = one_backend_with(|o| {
        o.header_read_timeout = Duration::from_millis(300);
        o.keepalive_timeout = Duration::from_secs(30);
    })
    .await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // A whole request, then the start of a second one that never ends: the
    // second head is due within the header-read timeout of its first
    // bytes, not the keep-alive timeout.
    let t = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 408"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let (_proxy, _blue, port) =
        one_backend_with(|o| o.keepalive_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_serves_at_most_its_connection_cap() {
    let (_proxy, _blue, port) = one_backend_with(|o| o.max_connections_per_listener = 2).await;
    let mut a = Conn::open(port).await;
    let _b = Conn::open(port).await;
    assert_eq!(a.get("/").await.status, 200);
    // The third waits in the backlog, unserved ...
    let mut third = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap");
    // ... until a connection closes.
    drop(a);
    let text = until_closed(&mut third).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_408_and_not_blamed_on_the_backend() {
    let (proxy, _blue, port) =
        one_backend_with(|o| o.body_read_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .expect("write");
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let q = StatsQuery {
        env: "prod".into(),
        slot: "blue".into(),
        service: None,
        since_ms: 0,
        slow_ms: None,
    };
    let st = proxy.admin.stats(&q).await.expect("stats");
    assert_eq!(
        (st.requests, st.errors, st.client_closed),
        (1, 0, 1),
        "{st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_can_have_its_own_request_timeout() {
    let proxy = TestProxy::start().await;
    let blue = Backend::start("blue").await;
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[&blue]));
    s.request_timeout_ms = Some(200);
    proxy.put(&table("prod", port, vec![s])).await;
    let t = Instant::now();
    let r = get(port, "/slow?ms=3000").await;
    assert_eq!(r.status, 504);
    assert!(r.body.contains("200 ms"), "{}", r.body);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(get(port, "/slow?ms=10").await.status, 200);
    // The field round-trips through the admin API.
    assert_eq!(
        proxy.table("prod").await.services[0].request_timeout_ms,
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_of_a_keep_alive_connection_gets_its_own_service_timeout() {
    // A connection keeps one deadline timer for all its requests: after a
    // request under the long default timeout, a shorter one must still
    // hold, and after it fired the next request is timed afresh.
    let proxy = TestProxy::start().await;
    let blue = Backend::start("blue").await;
    let port = loopback_port();
    let lenient = service("catalog", "/", loopback_port(), slot("blue", &[&blue]));
    let mut strict = service("search", "/slow", loopback_port(), slot("blue", &[&blue]));
    strict.request_timeout_ms = Some(200);
    proxy.put(&table("prod", port, vec![lenient, strict])).await;

    let mut conn = Conn::open(port).await;
    assert_eq!(conn.get("/").await.status, 200);
    let t = Instant::now();
    let r = conn.get("/slow?ms=3000").await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.body.contains("service search"), "{}", r.body);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(conn.get("/slow?ms=10").await.status, 200);
    assert_eq!(conn.get("/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_listener_reachable_from_other_hosts_asks_for_the_token() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let (port, preview) = (loopback_port(), loopback_port());
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[&blue]));
    s.candidate = candidate("green", &[&green], 0.0);
    let mut t = table("prod", port, vec![s]);
    t.preview_token = Some("s3cret".into());
    // Bound to every interface: other hosts could reach it.
    t.preview_listen = Some(format!("0.0.0.0:{preview}"));
    proxy.put(&t).await;
    assert_eq!(get(preview, "/").await.status, 403);
    assert_eq!(
        get_with(preview, "/", &[("x-hifi-preview-token", "wrong")])
            .await
            .status,
        403
    );
    let r = get_with(preview, "/", &[("x-hifi-preview-token", "s3cret")]).await;
    assert_eq!((r.status, r.backend()), (200, "green"));
    assert_eq!(
        r.header("x-seen-preview"),
        "-",
        "the token is not passed on"
    );
}
