//! Health probes in each protocol an instance may speak, against real
//! HTTP/2-only servers on loopback: h2c answers a `GET`, gRPC is called
//! with an empty message and judged on its `grpc-status`, and an instance
//! probed in a protocol it does not speak never passes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hifi_core::Protocol;
use hifi_runtime::{ProbeFailure, probe};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const PATIENCE: Duration = Duration::from_secs(5);

/// An HTTP/2-only server (prior knowledge). `GET /healthz` answers 200 and
/// `GET /sick` 503. gRPC calls (POST): `/ok.Svc/Check` answers a message
/// and `grpc-status: 0` in its trailers, `/down.Svc/Check` 14
/// (UNAVAILABLE) in its trailers, anything else a trailers-only 12
/// (UNIMPLEMENTED). It records whether the call carried the probe's empty
/// message.
async fn h2_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let post = req.method() == hyper::Method::POST;
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let with_trailers = |status: &'static str| {
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static(status));
                        let frames = vec![
                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        StreamBody::new(futures_util::stream::iter(frames)).boxed()
                    };
                    let empty = || Full::new(Bytes::new()).boxed();
                    let mut response: Response<BoxBody<Bytes, Infallible>> = match path.as_str() {
                        "/healthz" if !post => Response::new(empty()),
                        "/sick" if !post => {
                            let mut r = Response::new(empty());
                            *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                            r
                        }
                        "/ok.Svc/Check" if post => Response::new(with_trailers("0")),
                        "/down.Svc/Check" if post => Response::new(with_trailers("14")),
                        _ => {
                            let mut r = Response::new(empty());
                            r.headers_mut()
                                .insert("grpc-status", HeaderValue::from_static("12"));
                            r
                        }
                    };
                    if post {
                        response
                            .headers_mut()
                            .insert("content-type", HeaderValue::from_static("application/grpc"));
                        assert_eq!(
                            &body[..],
                            b"\0\0\0\0\0",
                            "the probe sends one empty message"
                        );
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/1.1-only server answering 200 to everything.
async fn h1_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_h2c_instance_is_probed_with_an_http2_get() {
    let addr = h2_server().await;
    assert_eq!(
        probe::get_status(addr, "/healthz", Protocol::H2c, PATIENCE)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        probe::get_status(addr, "/sick", Protocol::H2c, PATIENCE)
            .await
            .unwrap(),
        503
    );
    // Spoken to in HTTP/1.1, an HTTP/2-only server gives no answer.
    let err = probe::get_status(addr, "/healthz", Protocol::Http1, PATIENCE)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeFailure::Http(_)), "{err:?}");
}

#[tokio::test]
async fn a_grpc_instance_passes_on_ok_or_unimplemented_and_fails_on_an_error_status() {
    let addr = h2_server().await;
    let ok = probe::get_status(addr, "/ok.Svc/Check", Protocol::Grpc, PATIENCE).await;
    assert_eq!(ok.unwrap(), 200, "grpc-status 0 in the trailers");
    let unimplemented = probe::get_status(
        addr,
        "/grpc.health.v1.Health/Check",
        Protocol::Grpc,
        PATIENCE,
    )
    .await;
    assert_eq!(
        unimplemented.unwrap(),
        200,
        "a trailers-only UNIMPLEMENTED: the server is up"
    );
    let down = probe::get_status(addr, "/down.Svc/Check", Protocol::Grpc, PATIENCE)
        .await
        .unwrap_err();
    assert!(
        matches!(&down, ProbeFailure::GrpcStatus(s) if s == "14"),
        "{down:?}"
    );
    assert_eq!(down.to_string(), "answered with grpc-status 14");
}

#[tokio::test]
async fn an_http1_instance_never_passes_an_http2_probe() {
    let addr = h1_server().await;
    assert_eq!(
        probe::get_status(addr, "/healthz", Protocol::Http1, PATIENCE)
            .await
            .unwrap(),
        200
    );
    for protocol in [Protocol::H2c, Protocol::Grpc] {
        let err = probe::get_status(addr, "/healthz", protocol, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProbeFailure::Http(_) | ProbeFailure::Timeout(_)),
            "{protocol}: {err:?}"
        );
    }
}
