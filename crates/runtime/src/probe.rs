//! One HTTP/1.1 health probe: `GET <path>` to an address, status code back.
//!
//! A fresh connection per probe with `Connection: close`, so a probe never
//! reuses a connection to a process that has since been replaced, and the
//! instance is not left holding idle keep-alive connections.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper::header::{CONNECTION, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::error::ProbeFailure;

/// Sends `GET path` to `addr` and returns the response's status code.
///
/// Everything (connect, request, response head) must finish within
/// `timeout`. The body is not read.
pub async fn get_status(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<u16, ProbeFailure> {
    match tokio::time::timeout(timeout, attempt(addr, path)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProbeFailure::Timeout(timeout)),
    }
}

async fn attempt(addr: SocketAddr, path: &str) -> Result<u16, ProbeFailure> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let request = Request::get(path.as_str())
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| ProbeFailure::InvalidPath(path.clone()))?;

    let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeFailure::Refused,
        _ => ProbeFailure::Connect(e),
    })?;
    // Health answers are tiny; without this a probe can sit out a delayed ACK.
    let _ = stream.set_nodelay(true);
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

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
