//! Strict HTTP/1.1 framing and request hygiene, with raw bytes over real
//! sockets: every request the proxy cannot frame is answered with the
//! status RFC 9112 asks for and never reaches a backend (cases from sozu's
//! smuggling tests and the HTTP Garden's published findings).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::*;

/// Send `bytes` on a fresh connection and read until the proxy closes it.
async fn raw(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = bounded("answer and close", s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(text: &str) -> u16 {
    text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_be_framed_are_refused_before_any_backend() {
    let (_proxy, blue, port) = one_backend().await;
    let cases: &[(&[u8], u16)] = &[
        // TE.CL / CL.TE smuggling.
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
        // Obfuscated Transfer-Encoding.
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked, identity\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        // Content-Length that is not one plain number.
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 34\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3 3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        // Malformed heads.
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n  b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        // Chunk sizes that are not hex or overflow, chunk data without CRLF.
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0_2e\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nx\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
        // Host rules, CONNECT.
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        (b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 405),
    ];
    for (bytes, want) in cases {
        let text = raw(port, bytes).await;
        assert_eq!(
            status_of(&text),
            *want,
            "{:?} answered {text:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(text.contains("connection: close"), "{text}");
    }
    let long = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n",
        "v".repeat(17 * 1024)
    );
    assert_eq!(status_of(&raw(port, long.as_bytes()).await), 431);
    assert_eq!(blue.hits(), 0, "nothing unframeable reached the backend");
    // Well-framed bodies of both kinds still go through.
    let text = raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello world"),
        "{text}"
    );
    let text = raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello"),
        "{text}"
    );
}

/// A backend that records the heads it receives and answers each with
/// `200 ok`, keeping the connection.
async fn recording_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        // Health probes are not what the tests look at.
                        if !head.starts_with(b"GET /healthz ") {
                            log.lock()
                                .expect("log")
                                .push(String::from_utf8_lossy(&head).into_owned());
                        }
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_crlf_pipelining_after_close_and_h2c_upgrades_are_handled() {
    let proxy = TestProxy::start().await;
    let (backend, seen) = recording_backend().await;
    let port = loopback_port();
    let mut s = service("catalog", "/", loopback_port(), slot("blue", &[]));
    s.active.backends = vec![backend.to_string()];
    proxy.put(&table("prod", port, vec![s])).await;

    // A request followed by a stray CRLF is answered, and the connection
    // serves the next request.
    let mut c = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    c.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = bounded("first answer", c.read(&mut buf))
        .await
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    c.write_all(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let n = bounded("second answer", c.read(&mut buf))
        .await
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // After `Connection: close`, a pipelined request is neither run nor
    // answered, and the first is answered in full.
    let text = raw(
        port,
        b"GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /four HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{text}");
    assert!(text.ends_with("ok"), "{text}");

    // Only WebSocket may be upgraded: an h2c upgrade reaches the backend as
    // a plain request.
    let text = raw(
        port,
        b"GET /five HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let heads = seen.lock().expect("log").clone();
    let paths: Vec<&str> = heads
        .iter()
        .map(|h| h.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(paths, ["/one", "/two", "/three", "/five"]);
    let five = heads[3].to_ascii_lowercase();
    assert!(
        !five.contains("upgrade") && !five.contains("http2-settings"),
        "{five}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_route_in_normal_form_and_are_forwarded_as_received() {
    let proxy = TestProxy::start().await;
    let (catalog, _) = recording_backend().await;
    let (other, other_seen) = recording_backend().await;
    let port = loopback_port();
    let mut c = service("catalog", "/catalog", loopback_port(), slot("blue", &[]));
    c.active.backends = vec![catalog.to_string()];
    let mut o = service("admin", "/", loopback_port(), slot("blue", &[]));
    o.active.backends = vec![other.to_string()];
    proxy.put(&table("prod", port, vec![c, o])).await;
    for path in [
        "/catalog/../admin",
        "/catalog/%2e%2e/admin",
        "/catalog/%2E%2E/admin",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert!(raw(port, req.as_bytes()).await.starts_with("HTTP/1.1 200"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen: Vec<String> = other_seen
        .lock()
        .expect("log")
        .iter()
        .map(|h| h.split(' ').nth(1).unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        seen,
        [
            "/catalog/../admin",
            "/catalog/%2e%2e/admin",
            "/catalog/%2E%2E/admin"
        ],
        "routed as /admin, forwarded as received"
    );
}
