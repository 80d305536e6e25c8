//! A real proxy beside the server, serving a canary of one service: the
//! server asks it for live figures per service and slot through its admin
//! socket, as `hifi up` runs it.

use std::time::Duration;

use hifi_proxy::{AdminAddr, AdminClient, CandidateSpec, ServiceSpec, SlotSpec, TableSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A backend on loopback: 200 for every path but `/fail` (500); returns
/// its address.
async fn backend(stop: CancellationToken) -> String {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = tcp.accept() => match accepted { Ok(a) => a, Err(_) => return },
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                        seen.drain(..end + 4);
                        let status = if head.starts_with("GET /fail ") {
                            "500 Internal Server Error"
                        } else {
                            "200 OK"
                        };
                        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A proxy whose admin socket is the project's, serving `env` with the
/// stable slot green and the candidate blue at `weight` %, and traffic
/// through it (a request every 50 ms, one in four failing) until `stop`.
/// Returns the proxy's state directory, removed when dropped.
pub async fn proxy_with_traffic(
    socket: std::path::PathBuf,
    env: &str,
    weight: f64,
    stop: CancellationToken,
) -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    let options = hifi_proxy::ProxyOptions::new(state.path(), AdminAddr::unix(&socket));
    let until = stop.clone();
    tokio::spawn(hifi_proxy::serve(options, async move {
        until.cancelled().await
    }));
    let admin = AdminClient::new(&socket);
    for _ in 0..200 {
        if admin.tables().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (green, blue) = (backend(stop.clone()).await, backend(stop.clone()).await);
    let port = hifi_testkit::loopback_port();
    let table = TableSpec {
        env: env.into(),
        listen: format!("127.0.0.1:{port}"),
        user_key: "cookie:hifi-user".into(),
        preview_token: None,
        preview_listen: None,
        services: vec![ServiceSpec {
            name: "api".into(),
            route: "/".into(),
            host: None,
            internal_listen: format!("127.0.0.1:{}", hifi_testkit::loopback_port()),
            health: "/healthz".into(),
            active: SlotSpec {
                slot: "green".into(),
                backends: vec![green],
                protocol: None,
            },
            candidate: Some(CandidateSpec {
                slot: "blue".into(),
                backends: vec![blue],
                weight,
                protocol: None,
            }),
            standby: None,
            protocol: Default::default(),
            request_timeout_ms: None,
        }],
    };
    admin.put_table(&table).await.unwrap();
    tokio::spawn(async move {
        let client =
            hifi_server::client::http::HttpClient::new(Duration::from_secs(5), None).unwrap();
        // Bounded: at most a minute of traffic.
        for i in 0..1200u32 {
            if stop.is_cancelled() {
                return;
            }
            let path = if i % 4 == 0 { "fail" } else { "" };
            let cookie = format!("hifi-user=user-{}", i % 40);
            let _ = client
                .send(
                    http::Method::GET,
                    &format!("http://127.0.0.1:{port}/{path}"),
                    &[("cookie", cookie.as_str())],
                    bytes::Bytes::new(),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    state
}
