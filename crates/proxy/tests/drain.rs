//! Draining the old slot: in-flight requests finish, streaming responses and
//! upgraded connections pass through and are closed at the drain deadline.

use bytes::Bytes;
use hifi_proxy::DrainRequest;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

struct Setup {
    proxy: TestProxy,
    blue: Backend,
    green: Backend,
    port: u16,
    table: hifi_proxy::TableSpec,
}

async fn setup() -> Setup {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let table = table(
        "prod",
        port,
        vec![service(
            "catalog",
            "/",
            loopback_port(),
            slot("blue", &[&blue]),
        )],
    );
    proxy.put(&table).await;
    Setup {
        proxy,
        blue,
        green,
        port,
        table,
    }
}

async fn switch_to_green(s: &Setup) {
    let mut t = s.table.clone();
    t.services[0].active = slot("green", &[&s.green]);
    t.services[0].standby = Some(slot("blue", &[&s.blue]));
    s.proxy.put(&t).await;
}

async fn inflight(s: &Setup, slot: &str) -> (u64, u64) {
    let i = s
        .proxy
        .admin
        .inflight("prod", slot, None)
        .await
        .expect("inflight");
    (i.requests, i.upgraded)
}

fn drain_blue(deadline_ms: u64) -> DrainRequest {
    DrainRequest {
        env: "prod".into(),
        slot: "blue".into(),
        service: None,
        deadline_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_on_the_old_slot_completes_after_the_switch() {
    let s = setup().await;
    let port = s.port;
    let slow = tokio::spawn(async move { get(port, "/slow?ms=1500").await });
    eventually("the slow request counted in flight on blue", || async {
        inflight(&s, "blue").await.0 == 1
    })
    .await;
    switch_to_green(&s).await;
    assert_eq!(get(s.port, "/").await.backend(), "green");
    assert_eq!(
        inflight(&s, "blue").await.0,
        1,
        "still in flight after the switch"
    );
    let r = bounded("slow request", slow).await.expect("task");
    assert_eq!((r.status, r.backend()), (200, "blue"));
    eventually("blue drained", || async {
        inflight(&s, "blue").await == (0, 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_unbuffered_and_closes_at_the_drain_deadline() {
    let s = setup().await;
    let mut conn = Conn::open(s.port).await;
    let resp = conn
        .stream(
            req("GET", "/sse")
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // The backend has not finished (it waits for `release`), yet the first
    // event is here: nothing is buffered.
    let first = bounded("first event", body.frame())
        .await
        .expect("frame")
        .expect("ok");
    assert_eq!(
        first.into_data().expect("data"),
        Bytes::from("data: first\n\n")
    );
    assert_eq!(
        inflight(&s, "blue").await.0,
        1,
        "an open stream is in flight"
    );

    // A released stream completes normally.
    s.blue.release();
    let rest = bounded("rest", body.collect())
        .await
        .expect("rest")
        .to_bytes();
    assert_eq!(rest, Bytes::from("data: last\n\n"));

    // A stream still open at the drain deadline is closed.
    let mut conn = Conn::open(s.port).await;
    let resp = conn
        .stream(
            req("GET", "/sse")
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await;
    let mut body = resp.into_body();
    bounded("first event", body.frame())
        .await
        .expect("frame")
        .expect("ok");
    switch_to_green(&s).await;
    let answer = s.proxy.admin.drain(&drain_blue(200)).await.expect("drain");
    assert_eq!(answer.inflight.requests, 1);
    let end = bounded("stream closed by the drain deadline", body.collect()).await;
    assert!(end.is_err(), "the stream must end abruptly, not complete");
    eventually("blue drained", || async {
        inflight(&s, "blue").await == (0, 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_passes_through_and_closes_at_the_drain_deadline() {
    let s = setup().await;
    let mut conn = Conn::open(s.port).await;
    let r = req("GET", "/ws")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let mut resp = conn.stream(r).await;
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-hifi-slot"], "blue");
    let upgraded = bounded("upgrade", hyper::upgrade::on(&mut resp))
        .await
        .expect("upgraded");
    let mut io = TokioIo::new(upgraded);
    io.write_all(b"hello").await.expect("write");
    let mut buf = [0u8; 5];
    bounded("echo", io.read_exact(&mut buf))
        .await
        .expect("read");
    assert_eq!(&buf, b"hello");
    eventually("upgraded connection counted", || async {
        inflight(&s, "blue").await.1 == 1
    })
    .await;

    switch_to_green(&s).await;
    // Still usable after the switch, until the deadline.
    io.write_all(b"again").await.expect("write");
    bounded("echo", io.read_exact(&mut buf))
        .await
        .expect("read");
    assert_eq!(&buf, b"again");

    s.proxy.admin.drain(&drain_blue(300)).await.expect("drain");
    let mut rest = Vec::new();
    let n = bounded("closed at the deadline", io.read_to_end(&mut rest)).await;
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "connection should be closed: {n:?}"
    );
    eventually("upgraded count back to 0", || async {
        inflight(&s, "blue").await.1 == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_spares_a_slot_that_serves_users_again() {
    let s = setup().await;
    let mut conn = Conn::open(s.port).await;
    let resp = conn
        .stream(
            req("GET", "/sse")
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await;
    let mut body = resp.into_body();
    bounded("first event", body.frame())
        .await
        .expect("frame")
        .expect("ok");
    // Drain scheduled, then a rollback makes blue active again before the deadline.
    switch_to_green(&s).await;
    s.proxy.admin.drain(&drain_blue(300)).await.expect("drain");
    s.proxy.put(&s.table).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    s.blue.release();
    let rest = bounded("stream completes", body.collect())
        .await
        .expect("not cut")
        .to_bytes();
    assert_eq!(rest, Bytes::from("data: last\n\n"));
}
