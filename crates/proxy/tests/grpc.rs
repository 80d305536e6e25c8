//! Services whose backends speak HTTP/2 (`protocol = "h2c"` or `"grpc"`):
//! HTTP/2 and HTTP/1.1 clients reach them through the proxy, and a gRPC
//! answer with a non-zero `grpc-status` counts in the slot's errors. (A real `grpcio`
//! client and server: `bench/proxy/checks.sh`.)

use std::convert::Infallible;

use bytes::Bytes;
use hifi_proxy::{Protocol, StatsQuery};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use crate::util::*;

/// An HTTP/2-only backend: `/pkg.Svc/Ok` answers a gRPC message with
/// `grpc-status: 0` in the trailers, `/pkg.Svc/Fail` with 13, `/pkg.Svc/Only`
/// a trailers-only failure; anything else `h2 <path>`. It reports whether
/// requests carried `te: trailers`.
async fn h2_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let te = req
                        .headers()
                        .get("te")
                        .map(|v| v.to_str().unwrap_or("").to_owned())
                        .unwrap_or_default();
                    let slot = req.headers().get("x-hifi-slot").cloned();
                    let _ = req.into_body().collect().await;
                    let grpc = |status: &'static str| {
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static(status));
                        let frames = vec![
                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        StreamBody::new(futures_util::stream::iter(frames)).boxed()
                    };
                    let body: BoxBody<Bytes, Infallible> = match path.as_str() {
                        "/pkg.Svc/Ok" => grpc("0"),
                        "/pkg.Svc/Fail" => grpc("13"),
                        _ => Full::new(Bytes::from(format!("h2 {path}"))).boxed(),
                    };
                    let mut resp = Response::new(body);
                    resp.headers_mut()
                        .insert("x-seen-te", HeaderValue::from_str(&te).expect("te"));
                    if let Some(slot) = slot {
                        resp.headers_mut().insert("x-seen-slot", slot);
                    }
                    if path.starts_with("/pkg.Svc/") {
                        resp.headers_mut()
                            .insert("content-type", HeaderValue::from_static("application/grpc"));
                    }
                    if path == "/pkg.Svc/Only" {
                        resp.headers_mut()
                            .insert("grpc-status", HeaderValue::from_static("14"));
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// One HTTP/2 request through the proxy; the status, headers and trailers.
async fn h2_call(port: u16, path: &str) -> (u16, HeaderMap, Option<HeaderMap>, Bytes) {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let r = Request::post(format!("http://shop.test:{port}{path}"))
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02yo")))
        .expect("request");
    let resp = bounded("h2 call", send.send_request(r))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = bounded("body", resp.into_body().collect())
        .await
        .expect("body");
    let trailers = collected.trailers().cloned();
    (status, headers, trailers, collected.to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_in_trailers_counts_in_the_canarys_errors() {
    let proxy = TestProxy::start().await;
    let backend = h2_backend().await;
    let port = loopback_port();
    let mut s = service("greeter", "/", loopback_port(), slot("blue", &[]));
    s.active.backends = vec![backend.to_string()];
    s.protocol = Protocol::Grpc;
    proxy.put(&table("prod", port, vec![s])).await;
    assert_eq!(
        proxy.table("prod").await.services[0].protocol,
        Protocol::Grpc
    );

    let (status, headers, trailers, body) = h2_call(port, "/pkg.Svc/Ok").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-seen-te"], "trailers",
        "te: trailers reaches gRPC servers"
    );
    assert_eq!(headers["x-seen-slot"], "blue");
    assert_eq!(headers["x-hifi-slot"], "blue");
    assert_eq!(&body[..], b"\0\0\0\0\x02hi");
    assert_eq!(trailers.expect("trailers")["grpc-status"], "0");
    let (_, _, trailers, _) = h2_call(port, "/pkg.Svc/Fail").await;
    assert_eq!(trailers.expect("trailers")["grpc-status"], "13");
    let (status, headers, _, _) = h2_call(port, "/pkg.Svc/Only").await;
    assert_eq!(
        (status, &headers["grpc-status"]),
        (200, &HeaderValue::from_static("14"))
    );

    let q = StatsQuery {
        env: "prod".into(),
        slot: "blue".into(),
        service: None,
        since_ms: 0,
        slow_ms: None,
    };
    eventually("two gRPC failures counted", || {
        let admin = proxy.admin.clone();
        let q = q.clone();
        async move { admin.stats(&q).await.expect("stats").errors == 2 }
    })
    .await;
    let st = proxy.admin.stats(&q).await.expect("stats");
    assert_eq!(st.requests, 3, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_backends_serve_http2_clients_and_stay_healthy() {
    let proxy = TestProxy::start().await;
    let backend = h2_backend().await;
    let port = loopback_port();
    let mut s = service("api", "/", loopback_port(), slot("blue", &[]));
    s.active.backends = vec![backend.to_string()];
    s.protocol = Protocol::H2c;
    proxy.put(&table("prod", port, vec![s])).await;
    for _ in 0..3 {
        let r = get_h2(port, "/x").await;
        assert_eq!((r.status, r.body.as_str()), (200, "h2 /x"));
    }
    // Health probes speak HTTP/2 too: the backend stays in rotation.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let health = proxy.admin.health("prod").await.expect("health");
    assert!(health.iter().all(|b| b.healthy), "{health:?}");
    assert_eq!(get_h2(port, "/y").await.status, 200);
    // HTTP/1.1 clients are served too, over HTTP/2 to the backend.
    let mut conn = Conn::open(port).await;
    for _ in 0..3 {
        let r = conn.get("/h1").await;
        assert_eq!((r.status, r.body.as_str()), (200, "h2 /h1"));
        assert_eq!(r.header("x-hifi-slot"), "blue");
    }
    let post = req("POST", "/upload")
        .body(Full::new(Bytes::from("payload")))
        .expect("req");
    let r = bounded("POST", conn.send(post)).await.expect("response");
    assert_eq!((r.status, r.body.as_str()), (200, "h2 /upload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_slot_is_spoken_to_in_its_own_protocol() {
    // A rollout from a release that spoke HTTP/1.1 to one that speaks h2c:
    // the active slot keeps HTTP/1.1, the candidate gets HTTP/2.
    let proxy = TestProxy::start().await;
    let blue = Backend::start("blue").await;
    let green = h2_backend().await;
    let port = loopback_port();
    let mut s = service("api", "/", loopback_port(), slot("blue", &[&blue]));
    s.candidate = Some(hifi_proxy::CandidateSpec {
        slot: "green".into(),
        backends: vec![green.to_string()],
        weight: 0.0,
        protocol: Some(Protocol::H2c),
    });
    proxy.put(&table("prod", port, vec![s])).await;
    let stored = proxy.table("prod").await.services[0].clone();
    assert_eq!(
        (stored.protocol, stored.candidate.and_then(|c| c.protocol)),
        (Protocol::Http1, Some(Protocol::H2c))
    );

    for _ in 0..3 {
        let r = get(port, "/x").await;
        assert_eq!((r.status, r.body.as_str()), (200, "blue"));
        let r = get_with(port, "/x", &[("x-hifi-slot", "candidate")]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "h2 /x"));
    }
    // Each slot's backends are probed in their own protocol, so both stay
    // in rotation.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let health = proxy.admin.health("prod").await.expect("health");
    assert!(health.iter().all(|b| b.healthy), "{health:?}");
    let r = get_with(port, "/y", &[("x-hifi-slot", "candidate")]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "h2 /y"));
}
