//! Blue-green switching: atomic table swaps, per-request slot choice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_connection_sees_new_slot_on_its_next_request() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let internal = loopback_port();
    let mut t = table(
        "prod",
        port,
        vec![service(
            "catalog",
            "/catalog",
            internal,
            slot("blue", &[&blue]),
        )],
    );
    proxy.put(&t).await;

    let mut conn = Conn::open(port).await;
    let r = conn.get("/catalog/items").await;
    assert_eq!((r.status, r.backend()), (200, "blue"));
    assert_eq!(r.header("x-hifi-slot"), "blue");

    t.services[0].active = slot("green", &[&green]);
    proxy.put(&t).await;
    let r = conn.get("/catalog/items").await;
    assert_eq!(
        (r.status, r.backend()),
        (200, "green"),
        "same connection, next request"
    );
    assert_eq!(r.header("x-seen-slot"), "green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_back_and_forth_under_keepalive_load_fails_no_request() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let internal = loopback_port();
    let blue_t = table(
        "prod",
        port,
        vec![service("catalog", "/", internal, slot("blue", &[&blue]))],
    );
    let mut green_t = blue_t.clone();
    green_t.services[0].active = slot("green", &[&green]);
    proxy.put(&blue_t).await;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, failures, ok) = (stop.clone(), failures.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            // Bounded: stops when told, or after 20,000 requests at most.
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let r = req("GET", "/x").body(Default::default()).expect("req");
                match conn.send(r).await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failures.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    for i in 0..20 {
        let before = ok.load(Ordering::SeqCst);
        proxy.put(if i % 2 == 0 { &green_t } else { &blue_t }).await;
        eventually("requests after the switch", || {
            let ok = ok.clone();
            async move { ok.load(Ordering::SeqCst) > before + 20 }
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        bounded("client", c).await.expect("client task");
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "failed requests during switches"
    );
    assert!(blue.hits() > 0 && green.hits() > 0);
    // The last table (i = 19 → blue) is what a fresh connection sees.
    assert_eq!(get(port, "/x").await.backend(), "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_follow_the_table() {
    let proxy = TestProxy::start().await;
    let blue = Backend::start("blue").await;
    let (port, internal) = (loopback_port(), loopback_port());
    let mut t = table(
        "dev",
        port,
        vec![service("catalog", "/", internal, slot("blue", &[&blue]))],
    );
    proxy.put(&t).await;
    assert_eq!(get(port, "/").await.status, 200);
    assert_eq!(get(internal, "/").await.status, 200);

    let (port2, internal2) = (loopback_port(), loopback_port());
    t.listen = local(port2);
    t.services[0].internal_listen = local(internal2);
    proxy.put(&t).await;
    assert_eq!(get(port2, "/").await.status, 200);
    assert_eq!(get(internal2, "/").await.status, 200);
    eventually("old listeners closed", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            && tokio::net::TcpStream::connect(("127.0.0.1", internal))
                .await
                .is_err()
    })
    .await;

    assert!(proxy.admin.remove_table("dev").await.expect("remove"));
    eventually("listeners closed after removal", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port2))
            .await
            .is_err()
    })
    .await;
    assert_eq!(proxy.admin.get_table("dev").await.expect("get"), None);
}
