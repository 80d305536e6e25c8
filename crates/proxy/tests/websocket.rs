//! Real WebSocket and SSE clients at the drain deadline: a WebSocket gets a
//! close frame with 1001 (going away) on both sides, an event stream ends
//! cleanly, so clients reconnect without an error.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hifi_proxy::DrainRequest;
use http_body_util::{BodyExt, Full};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::*;

/// A WebSocket echo backend; reports the close codes it receives.
async fn ws_backend() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Option<u16>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                // Health checks are plain HTTP: answer them and move on.
                let mut peek = [0u8; 16];
                if let Ok(n) = s.peek(&mut peek).await
                    && peek[..n].starts_with(b"GET /healthz")
                {
                    use tokio::io::AsyncWriteExt;
                    let mut s = s;
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    return;
                }
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Close(frame) = msg {
                        let _ = tx.send(frame.map(|f| u16::from(f.code)));
                        let _ = ws.close(None).await;
                        return;
                    }
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_get_1001_going_away_at_the_drain_deadline() {
    let proxy = TestProxy::start().await;
    let (backend, mut closes) = ws_backend().await;
    let green = Backend::start("green").await;
    let port = loopback_port();
    let mut s = service("chat", "/", loopback_port(), slot("blue", &[]));
    s.active.backends = vec![backend.to_string()];
    let t = table("prod", port, vec![s]);
    proxy.put(&t).await;

    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut ws, resp) = bounded(
        "handshake",
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/ws"), stream),
    )
    .await
    .expect("websocket handshake through the proxy");
    assert_eq!(resp.headers()["x-hifi-slot"], "blue");
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        let echo = bounded("echo", ws.next())
            .await
            .expect("open")
            .expect("frame");
        assert_eq!(echo, Message::text(text));
    }

    // Switch away and drain: the close frame arrives with 1001.
    let mut moved = t.clone();
    moved.services[0].active = slot("green", &[&green]);
    proxy.put(&moved).await;
    proxy
        .admin
        .drain(&DrainRequest {
            env: "prod".into(),
            slot: "blue".into(),
            service: None,
            deadline_ms: 100,
        })
        .await
        .expect("drain");
    let close = loop {
        match bounded("close frame", ws.next()).await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Away, "1001 going away");
    // The backend was told the same.
    let code = bounded("backend close", closes.recv())
        .await
        .expect("reported");
    assert_eq!(code, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_end_cleanly_at_the_drain_deadline() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let t = table(
        "prod",
        port,
        vec![service(
            "catalog",
            "/",
            loopback_port(),
            slot("blue", &[&blue]),
        )],
    );
    proxy.put(&t).await;
    let mut conn = Conn::open(port).await;
    let resp = conn
        .stream(
            req("GET", "/sse")
                .header("accept", "text/event-stream")
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = bounded("first event", body.frame())
        .await
        .expect("frame")
        .expect("ok");
    assert_eq!(
        first.into_data().expect("data"),
        Bytes::from("data: first\n\n")
    );
    let mut moved = t.clone();
    moved.services[0].active = slot("green", &[&green]);
    proxy.put(&moved).await;
    proxy
        .admin
        .drain(&DrainRequest {
            env: "prod".into(),
            slot: "blue".into(),
            service: None,
            deadline_ms: 100,
        })
        .await
        .expect("drain");
    // The stream ends without an error: the chunked terminator came.
    let rest = bounded("clean end", body.collect())
        .await
        .expect("no error");
    assert!(rest.to_bytes().is_empty());
    // And the same connection carries the reconnect, to the new slot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(conn.get("/").await.backend(), "green");
}
