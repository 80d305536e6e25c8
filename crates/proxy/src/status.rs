//! The read-only status listener: a TCP listener (`hifi proxy
//! --status-listen ADDR`) that answers the admin interface's `GET`
//! endpoints — `/stats`, `/inflight`, `/health`, `/tables`, `/metrics` —
//! and `/healthz`, and nothing that changes routing. It is how the
//! controller reads an in-cluster proxy's per-slot figures (through the API
//! server's pod proxy) while routing stays changeable only through the
//! unix socket (and the ConfigMap the proxy watches).

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::client::AdminClient;

/// The admin endpoints the status listener passes on (reads only).
const READABLE: [&str; 5] = ["/stats", "/inflight", "/health", "/tables", "/metrics"];

fn answer(code: u16, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

async fn route(admin: &AdminClient, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if req.method() != Method::GET {
        return answer(
            405,
            "application/json",
            Bytes::from_static(b"{\"error\":\"the status listener only reads\"}"),
        );
    }
    if path == "/healthz" {
        return answer(200, "text/plain", Bytes::from_static(b"ok\n"));
    }
    if !READABLE.contains(&path) && !path.starts_with("/tables/") {
        return answer(
            404,
            "application/json",
            Bytes::from(format!("{{\"error\":\"no status endpoint {path}\"}}")),
        );
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or(path.to_owned(), |p| p.as_str().to_owned());
    match admin.request(Method::GET, &target, None).await {
        Ok((code, body)) => answer(code, "application/json", body),
        Err(e) => answer(
            502,
            "application/json",
            Bytes::from(serde_json::json!({ "error": e.to_string() }).to_string()),
        ),
    }
}

/// Serves the status listener until `shutdown` completes, answering from
/// the proxy whose admin socket `admin` reaches.
pub async fn serve_status(
    listener: TcpListener,
    admin: AdminClient,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "status accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
