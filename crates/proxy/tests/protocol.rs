//! Protocol handling: h2c, malformed requests, forwarded and hop-by-hop headers.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    let (_proxy, _blue, port) = one_backend().await;
    let r = get_h2(port, "/x").await;
    assert_eq!((r.status, r.backend()), (200, "blue"));
    assert_eq!(
        r.header("x-seen-host"),
        format!("shop.test:{port}"),
        "authority becomes Host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_can_be_served_on_the_callers_runtime() {
    // workers = 0: no proxy threads of its own; keep-alive reuse, h2c and
    // the pooled backend connections work the same.
    let (_proxy, _blue, port) = one_backend_with(|o| o.workers = 0).await;
    let mut conn = Conn::open(port).await;
    for _ in 0..3 {
        let r = conn.get("/").await;
        assert_eq!((r.status, r.backend()), (200, "blue"));
    }
    assert_eq!(get_h2(port, "/x").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_and_the_proxy_carries_on() {
    let (_proxy, blue, port) = one_backend().await;
    let answer = |bad: &'static [u8]| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(bad).await.expect("write");
        let mut out = Vec::new();
        let _ = bounded("answer", s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    let text = answer(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // Garbage that hyper cannot even frame closes the connection.
    for bad in [
        &b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
        b"\x00\x01\x02 not http at all\r\n\r\n",
    ] {
        let text = answer(bad).await;
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 400"),
            "{text}"
        );
    }
    assert_eq!(blue.hits(), 0, "nothing malformed reached the backend");
    assert_eq!(get(port, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_set_and_hop_by_hop_headers_stripped() {
    let (_proxy, _blue, port) = one_backend().await;
    let r = get_with(
        port,
        "/",
        &[
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-hifi-slot", "green"),
        ],
    )
    .await;
    assert_eq!(
        r.header("x-seen-secret"),
        "-",
        "header named by Connection removed"
    );
    assert_eq!(r.header("x-seen-xff"), "203.0.113.9, 127.0.0.1");
    assert_eq!(r.header("x-seen-xfp"), "http");
    assert_eq!(r.header("x-seen-xfh"), "shop.test");
    assert_eq!(r.header("x-seen-host"), "shop.test", "Host kept");
    assert_eq!(
        r.header("x-seen-slot"),
        "blue",
        "the proxy's slot, not the client's"
    );
}
