//! The read-only status listener: the admin interface's reads over TCP
//! (how the controller reads an in-cluster proxy's figures), and nothing
//! that changes routing.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::*;

/// One request on a fresh connection; the status code and the body.
async fn call(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    bounded("the status answer", stream.read_to_string(&mut answer))
        .await
        .expect("read");
    let code = answer[9..12].parse().expect("status code");
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_listener_answers_reads_and_refuses_writes() {
    let proxy = TestProxy::start().await;
    let blue = Backend::start("blue").await;
    proxy
        .put(&table(
            "prod",
            loopback_port(),
            vec![service(
                "catalog",
                "/catalog",
                loopback_port(),
                slot("blue", &[&blue]),
            )],
        ))
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(hifi_proxy::serve_status(
        listener,
        proxy.admin.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    assert_eq!(call(port, "GET", "/healthz").await.0, 200);
    let (code, body) = call(port, "GET", "/stats?env=prod&slot=blue&since_ms=0").await;
    assert_eq!(code, 200, "{body}");
    let stats: hifi_proxy::Stats = serde_json::from_str(&body).expect("stats");
    assert_eq!((stats.env.as_str(), stats.slot.as_str()), ("prod", "blue"));
    let (code, body) = call(port, "GET", "/inflight?env=prod&slot=blue").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(call(port, "GET", "/tables/prod").await.0, 200);
    // The admin's refusals come through as they are.
    assert_eq!(call(port, "GET", "/stats?env=prod").await.0, 400);

    // Nothing here changes routing.
    assert_eq!(call(port, "DELETE", "/tables/prod").await.0, 405);
    assert_eq!(call(port, "POST", "/drain").await.0, 405);
    assert_eq!(call(port, "GET", "/drain").await.0, 404);
    proxy.table("prod").await;

    let _ = stop.send(());
    bounded("the status listener's end", serving)
        .await
        .expect("task");
    proxy.stop().await;
}
