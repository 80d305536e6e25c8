//! Every request's ending is attributed: only the backend's failures count
//! against the slot; the client's side (abandoned uploads, broken chunked
//! bodies, giving up on a hanging backend) is counted apart, and an
//! abandonment counts as an error only beyond the query's `slow_ms`.

use std::time::Duration;

use hifi_proxy::{Stats, StatsQuery};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::*;

async fn stats(proxy: &TestProxy, slot: &str, slow_ms: Option<u64>) -> Stats {
    proxy
        .admin
        .stats(&StatsQuery {
            env: "prod".into(),
            slot: slot.into(),
            service: None,
            since_ms: 0,
            slow_ms,
        })
        .await
        .expect("stats")
}

/// Routes prod's `/` (blue) to `backend` on a new port, which it returns.
async fn route_to(proxy: &TestProxy, backend: std::net::SocketAddr) -> u16 {
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[]));
    s.active.backends = vec![backend.to_string()];
    proxy.put(&table("prod", port, vec![s])).await;
    port
}

/// Asserts the proxy's metrics count `n` requests of blue's that ended
/// with `outcome`.
async fn assert_outcome(proxy: &TestProxy, outcome: &str, n: u64) {
    let text = proxy.admin.metrics_text().await.expect("metrics");
    let line = format!(
        r#"hifi_proxy_outcomes_total{{env="prod",service="catalog",slot="blue",outcome="{outcome}"}} {n}"#
    );
    assert!(text.contains(&line), "no `{line}` in {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_is_the_clients_not_the_backends() {
    let (proxy, _blue, port) = one_backend().await;
    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
            .await
            .expect("write");
        s.write_all(&[b'x'; 1000]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(s);
    }
    assert_eq!(get(port, "/").await.status, 200);
    eventually("three client_closed", || async {
        stats(&proxy, "blue", None).await.client_closed == 3
    })
    .await;
    let s = stats(&proxy, "blue", None).await;
    assert_eq!((s.requests, s.errors, s.error_ratio), (4, 0, 0.0), "{s:?}");
    assert_outcome(&proxy, "client_closed", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chunked_body_from_the_client_is_a_bad_request() {
    let (proxy, blue, port) = one_backend().await;
    // Broken in the first bytes: refused before any backend sees it.
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = bounded("answer", s.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(blue.hits(), 0);
    // Broken later, once streaming: 400 as well, never "backend failed".
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"0_2e\r\n\r\n").await.expect("write");
    let mut out = Vec::new();
    let _ = bounded("answer", s.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    eventually("two bad requests", || async {
        stats(&proxy, "blue", None).await.bad_requests == 2
    })
    .await;
    let s = stats(&proxy, "blue", None).await;
    assert_eq!((s.requests, s.errors), (2, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_giving_up_on_a_hanging_backend_fail_the_step_beyond_slow_ms() {
    let (proxy, _blue, port) = one_backend().await;
    for _ in 0..2 {
        let mut conn = Conn::open(port).await;
        // The client's own timeout: 400 ms.
        let r = tokio::time::timeout(Duration::from_millis(400), conn.get("/hang")).await;
        assert!(r.is_err(), "the backend hangs");
        drop(conn);
    }
    eventually("two abandoned requests", || async {
        stats(&proxy, "blue", None).await.abandoned == 2
    })
    .await;
    // Without slow_ms: latency and the abandoned count only.
    let s = stats(&proxy, "blue", None).await;
    assert_eq!((s.requests, s.errors, s.abandoned_slow), (2, 0, 0), "{s:?}");
    assert!(s.p50_ms.expect("p50") >= 300.0, "{s:?}");
    // With a latency limit below the time users waited: the step fails.
    let s = stats(&proxy, "blue", Some(200)).await;
    assert_eq!(
        (s.errors, s.abandoned_slow, s.error_ratio),
        (2, 2, 1.0),
        "{s:?}"
    );
    // And above it: not errors.
    let s = stats(&proxy, "blue", Some(5_000)).await;
    assert_eq!((s.errors, s.abandoned_slow), (0, 0), "{s:?}");
    assert_outcome(&proxy, "abandoned", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reset_is_the_backends_failure() {
    let proxy = TestProxy::start().await;
    // Reads each request and closes without answering.
    let (backend, _) = closing_backend(false).await;
    let port = route_to(&proxy, backend).await;
    let mut c = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    c.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = bounded("answer", c.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 502"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let s = stats(&proxy, "blue", None).await;
    assert_eq!((s.requests, s.errors, s.client_closed), (1, 1, 0), "{s:?}");
    assert_outcome(&proxy, "backend_failed", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_giving_up_is_counted_as_abandoned() {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let (proxy, _blue, port) = one_backend().await;
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let r = http::Request::get(format!("http://shop.test:{port}/hang"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let answer = tokio::time::timeout(Duration::from_millis(300), send.send_request(r)).await;
    assert!(answer.is_err(), "the backend hangs");
    drop(send);
    driver.abort();
    eventually("the abandoned HTTP/2 request", || async {
        stats(&proxy, "blue", None).await.abandoned == 1
    })
    .await;
    let s = stats(&proxy, "blue", Some(100)).await;
    assert_eq!((s.requests, s.errors, s.abandoned_slow), (1, 1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_refusing_an_upload_is_answered_without_the_rest_of_the_body() {
    use tokio::net::TcpListener;

    let proxy = TestProxy::start().await;
    // Answers 413 as soon as it has the head, and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                if seen.starts_with(b"GET /healthz") {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbig!")
                    .await;
            });
        }
    });
    let port = route_to(&proxy, backend).await;
    let mut c = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    c.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n")
        .await
        .expect("write");
    c.write_all(&[b'x'; 16 * 1024]).await.expect("write");
    // The client never sends the rest: the answer comes anyway, and the
    // connection closes after it.
    let mut out = Vec::new();
    let _ = bounded("answer", c.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("connection: close") && text.ends_with("big!"),
        "{text}"
    );
    let s = stats(&proxy, "blue", None).await;
    assert_eq!((s.requests, s.errors, s.client_closed), (1, 0, 0), "{s:?}");
}
