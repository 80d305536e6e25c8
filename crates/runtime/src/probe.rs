//! One health probe of an instance, in the protocol it speaks: `GET <path>`
//! over HTTP/1.1 or HTTP/2 (h2c, prior knowledge), or for gRPC a call of
//! `<path>` with one empty message, judged like the proxy judges it
//! ([`hifi_core::protocol::grpc_probe_passes`]).
//!
//! A fresh connection per probe (HTTP/1.1 with `Connection: close`), so a
//! probe never reuses a connection to a process that has since been
//! replaced, and the instance is not left holding idle connections.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hifi_core::Protocol;
use hifi_core::protocol::{GRPC_PROBE_MESSAGE, grpc_probe_passes};
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, TE, USER_AGENT};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, ProbeFailure, Result};
use crate::instance::{Instance, InstanceSpec, InstanceStatus};

/// Sends one probe of `path` to `addr` in `protocol` and returns the
/// answer's status code.
///
/// HTTP/1.1 and h2c send `GET path`; the caller judges the code (hifi wants
/// 2xx). gRPC calls `path` with an empty message and reads the answer to
/// its trailers: an answer [`grpc_probe_passes`] refuses is a
/// [`ProbeFailure`] (a non-2xx as [`ProbeFailure::Status`], an error
/// `grpc-status` as [`ProbeFailure::GrpcStatus`]), so `Ok` is always a 2xx.
///
/// Everything (connect, request, response — for gRPC up to its trailers)
/// must finish within `timeout`; other bodies are not read.
pub async fn get_status(
    addr: SocketAddr,
    path: &str,
    protocol: Protocol,
    timeout: Duration,
) -> Result<u16, ProbeFailure> {
    match tokio::time::timeout(timeout, attempt(addr, path, protocol)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProbeFailure::Timeout(timeout)),
    }
}

async fn attempt(addr: SocketAddr, path: &str, protocol: Protocol) -> Result<u16, ProbeFailure> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeFailure::Refused,
        _ => ProbeFailure::Connect(e),
    })?;
    // Health answers are tiny; without this a probe can sit out a delayed ACK.
    let _ = stream.set_nodelay(true);
    match protocol {
        Protocol::Http1 => http1(stream, addr, path).await,
        Protocol::H2c | Protocol::Grpc => http2(stream, addr, path, protocol).await,
    }
}

async fn http1(stream: TcpStream, addr: SocketAddr, path: String) -> Result<u16, ProbeFailure> {
    let request = Request::get(path.as_str())
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| ProbeFailure::InvalidPath(path.clone()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ProbeFailure::Http)?;
    // The connection future does the actual I/O and must run beside the
    // request. Aborting it when we return (or the timeout drops us) closes
    // the socket without reading a body nobody needs.
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(ProbeFailure::Http)?;
    Ok(response.status().as_u16())
}

/// An HTTP/2 probe with prior knowledge: `GET path` for h2c, a gRPC call
/// for gRPC.
async fn http2(
    stream: TcpStream,
    addr: SocketAddr,
    path: String,
    protocol: Protocol,
) -> Result<u16, ProbeFailure> {
    let grpc = protocol == Protocol::Grpc;
    // HTTP/2 takes scheme and authority from the URI.
    let uri = format!("http://{addr}{path}");
    let request = if grpc {
        Request::post(uri)
            .header(CONTENT_TYPE, "application/grpc")
            .header(TE, "trailers")
    } else {
        Request::get(uri)
    }
    .header(USER_AGENT, "hifi-health")
    .body(if grpc {
        Full::new(Bytes::from_static(&GRPC_PROBE_MESSAGE))
    } else {
        Full::new(Bytes::new())
    })
    .map_err(|_| ProbeFailure::InvalidPath(path.clone()))?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(ProbeFailure::Http)?;
    // As for HTTP/1.1: dropping the connection task closes the socket.
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(ProbeFailure::Http)?;
    let status = response.status().as_u16();
    if !grpc {
        return Ok(status);
    }
    // A trailers-only answer carries grpc-status in its headers; otherwise
    // it comes in the trailers, after the (small) answer message.
    let mut grpc_status = response.headers().get("grpc-status").cloned();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(ProbeFailure::Http)?;
    if let Some(trailer) = collected.trailers().and_then(|t| t.get("grpc-status")) {
        grpc_status = Some(trailer.clone());
    }
    let grpc_status = grpc_status.map(|g| g.as_bytes().to_vec());
    if grpc_probe_passes(status, grpc_status.as_deref()) {
        Ok(status)
    } else if !(200..300).contains(&status) {
        Err(ProbeFailure::Status(status))
    } else {
        Err(ProbeFailure::GrpcStatus(
            String::from_utf8_lossy(grpc_status.as_deref().unwrap_or_default()).into_owned(),
        ))
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`get_status`] of `path` on `instance`, a failure named as the
/// runtime's error: [`Runtime::probe`](crate::Runtime::probe) for the
/// runtimes whose instances the controller reaches directly.
pub(crate) async fn once(
    instance: &Instance,
    path: &str,
    protocol: Protocol,
    timeout: Duration,
) -> Result<u16> {
    get_status(instance.addr, path, protocol, timeout)
        .await
        .map_err(|failure| Error::Probe {
            instance: instance.describe(),
            url: format!("http://{}{path}", instance.addr),
            failure,
        })
}

/// Upper bound for one health probe while waiting: a hung instance must not
/// eat the whole health timeout in a single attempt.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The first pause between probes (most services are up in well under a
/// second); it doubles up to [`MAX_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(25);
/// The longest pause between probes.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What a runtime tells [`until_healthy`] about the instance it waits on.
pub(crate) trait Watched {
    /// `Some((how, last log lines))` once the instance has ended.
    fn ended(&mut self) -> impl Future<Output = Option<(InstanceStatus, String)>> + Send;

    /// Whether `port` is held by this instance (not by a stranger that
    /// took it first).
    fn owns_port(&mut self, port: u16) -> impl Future<Output = bool> + Send;

    /// Waits `pause`, waking early when the instance ends.
    fn pause(&mut self, pause: Duration) -> impl Future<Output = ()> + Send;
}

/// Probes `spec.health_path` on `instance` in `spec.protocol` until it
/// answers 2xx from the instance's own port, backing off from 25 ms to
/// 500 ms; fails at once when the instance ends, and at `timeout` with the
/// last reason.
pub(crate) async fn until_healthy(
    spec: &InstanceSpec,
    instance: &Instance,
    timeout: Duration,
    watched: &mut impl Watched,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut interval = FIRST_POLL_INTERVAL;
    loop {
        if let Some((status, tail)) = watched.ended().await {
            return Err(Error::ExitedBeforeHealthy {
                instance: instance.describe(),
                status,
                log: spec.log.clone(),
                tail,
            });
        }
        // Even with no time left, probe once: the caller should get a
        // reason, and an instance that is up should pass.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let probe_timeout = remaining.clamp(Duration::from_millis(100), PROBE_TIMEOUT);
        let last = match get_status(
            instance.addr,
            &spec.health_path,
            spec.protocol,
            probe_timeout,
        )
        .await
        {
            Ok(code) if (200..300).contains(&code) => {
                if watched.owns_port(instance.addr.port()).await {
                    tracing::info!(instance = %instance.describe(), "healthy");
                    return Ok(());
                }
                ProbeFailure::NotThisInstance(instance.addr.port())
            }
            Ok(code) => ProbeFailure::Status(code),
            Err(failure) => failure,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Unhealthy {
                instance: instance.describe(),
                path: spec.health_path.clone(),
                timeout,
                last,
            });
        }
        watched.pause(interval.min(deadline - now)).await;
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
}
