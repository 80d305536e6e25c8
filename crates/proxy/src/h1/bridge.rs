//! HTTP/1.1 clients of services whose backends speak HTTP/2 (`protocol`
//! `h2c` or `grpc`): the parsed head becomes an HTTP/2 request (fields less
//! the hop-by-hop ones, hifi's added), the request body is read whole (at
//! most `MAX_BODY`, else 413), and the answer is written back as HTTP/1.1,
//! its body streamed (chunked when its length is unknown; trailers dropped,
//! a non-zero `grpc-status` in them still counted as an error).

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::body::{ReqBody, grpc_failed};
use crate::compiled::{Backend, CompiledSlot};
use crate::metrics::Class;
use crate::proxy::ConnCtx;
use crate::table::Protocol;
use crate::upstream::Failure;

use super::chunked::{ChunkedDecoder, Step};
use super::conn::{Client, answer};
use super::exchange::{Next, push_decimal};
use super::head::{BodyKind, Kind, kind_of_name};

/// Largest request body read whole for an HTTP/2 backend.
const MAX_BODY: u64 = 8 * 1024 * 1024;

/// Forward the request at the head of `c.buf` to an HTTP/2 backend.
pub(super) async fn forward(
    c: &mut Client,
    conn: &Arc<ConnCtx>,
    slot: &CompiledSlot,
    backend: &Backend,
    set_cookie: Option<HeaderValue>,
    start: Instant,
) -> Next {
    let shared = &conn.listener.shared;
    let metrics = &slot.state.metrics;
    let keep_alive = c.head.keep_alive;
    let minor = c.head.minor;
    let body_kind = c.head.body;
    let req = match request(c, conn, slot, backend) {
        Ok(r) => r,
        Err(why) => {
            c.buf.advance(c.head.len);
            metrics.bad_request();
            return answer(c, 400, why.as_bytes(), false).await;
        }
    };
    c.buf.advance(c.head.len);
    let body = match read_whole(c, body_kind, shared.limits.body_read_timeout).await {
        Ok(b) => b,
        Err((status, why)) => {
            if status == 0 {
                metrics.client_closed(false);
                return Next::Abort;
            }
            if status == 400 {
                metrics.bad_request();
            }
            return answer(c, status, why.as_bytes(), false).await;
        }
    };
    let req = req.map(|()| match body {
        Some(b) => ReqBody::Full(Some(b)),
        None => ReqBody::Empty,
    });
    let timeout = slot.timeout.unwrap_or(shared.upstream_timeout);
    let resp = match slot
        .upstream
        .send_h2(backend.addr, &backend.h2, req, timeout)
        .await
    {
        Ok(r) => r,
        Err(f) => {
            metrics.finished(Class::ProxyError, start.elapsed());
            let (env, service, name) = (&slot.state.env, &slot.state.service, &slot.name);
            let (status, msg) = match f {
                Failure::Timeout => (
                    504,
                    format!(
                        "hifi: backend of service {service} in {env} (slot {name}) did not answer within {} ms",
                        timeout.as_millis()
                    ),
                ),
                Failure::Connect(e) | Failure::Exchange(e) => {
                    tracing::warn!(%env, %service, slot = %name, backend = %backend.addr, error = %e, "h2 backend failed");
                    (
                        502,
                        format!("hifi: backend of service {service} in {env} (slot {name}) failed"),
                    )
                }
            };
            return answer(c, status, msg.as_bytes(), keep_alive).await;
        }
    };
    let grpc = slot.protocol == Protocol::Grpc;
    metrics.finished(Class::of(resp.status().as_u16()), start.elapsed());
    if grpc && grpc_failed(resp.headers()) {
        metrics.grpc_error();
    }
    // The answer's head, as HTTP/1.1.
    let exact = resp.body().size_hint().exact();
    let chunked = exact.is_none() && minor == 1;
    let close = !keep_alive || (exact.is_none() && !chunked);
    c.out.clear();
    c.out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut c.out, u64::from(resp.status().as_u16()));
    c.out.push(b' ');
    c.out
        .extend_from_slice(resp.status().canonical_reason().unwrap_or("").as_bytes());
    c.out.extend_from_slice(b"\r\n");
    for (name, value) in resp.headers() {
        match kind_of_name(name.as_str().as_bytes()) {
            Kind::ContentLength
            | Kind::TransferEncoding
            | Kind::Connection
            | Kind::Upgrade
            | Kind::HopByHop
            | Kind::Slot => continue,
            _ => {}
        }
        c.out.extend_from_slice(name.as_str().as_bytes());
        c.out.extend_from_slice(b": ");
        c.out.extend_from_slice(value.as_bytes());
        c.out.extend_from_slice(b"\r\n");
    }
    c.out.extend_from_slice(b"x-hifi-slot: ");
    c.out.extend_from_slice(slot.name.as_bytes());
    c.out.extend_from_slice(b"\r\n");
    if let Some(cookie) = &set_cookie {
        c.out.extend_from_slice(b"set-cookie: ");
        c.out.extend_from_slice(cookie.as_bytes());
        c.out.extend_from_slice(b"\r\n");
    }
    match exact {
        Some(n) => {
            c.out.extend_from_slice(b"content-length: ");
            push_decimal(&mut c.out, n);
            c.out.extend_from_slice(b"\r\n");
        }
        None if chunked => c.out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        None => {}
    }
    if close {
        c.out.extend_from_slice(b"connection: close\r\n");
    }
    c.out.extend_from_slice(b"\r\n");
    let mut body = resp.into_body();
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(_)) => {
                metrics.failed_midway();
                return Next::Abort;
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if chunked && !data.is_empty() {
                    c.out
                        .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    c.out.extend_from_slice(&data);
                    c.out.extend_from_slice(b"\r\n");
                } else {
                    c.out.extend_from_slice(&data);
                }
            }
            Err(frame) => {
                if grpc && frame.trailers_ref().is_some_and(grpc_failed) {
                    metrics.grpc_error();
                }
            }
        }
        if c.stream.write_all(&c.out).await.is_err() {
            metrics.client_closed(true);
            return Next::Abort;
        }
        c.out.clear();
    }
    if chunked {
        c.out.extend_from_slice(b"0\r\n\r\n");
    }
    if c.stream.write_all(&c.out).await.is_err() {
        metrics.client_closed(true);
        return Next::Abort;
    }
    if close { Next::Close } else { Next::KeepAlive }
}

/// The HTTP/2 request for the head at the start of `c.buf` (body added
/// later).
fn request(
    c: &Client,
    conn: &ConnCtx,
    slot: &CompiledSlot,
    backend: &Backend,
) -> Result<Request<()>, &'static str> {
    let h = &c.head;
    let buf = &c.buf[..];
    let host = h
        .authority
        .as_ref()
        .or(h.host.as_ref())
        .map(|r| String::from_utf8_lossy(&buf[r.clone()]).into_owned())
        .unwrap_or_else(|| backend.addr.to_string());
    let origin = String::from_utf8_lossy(&buf[h.origin.clone()]);
    let origin = if origin.is_empty() {
        "/".into()
    } else {
        origin
    };
    let mut req = Request::builder()
        .method(&buf[h.method.clone()])
        .uri(format!("http://{host}{origin}"))
        .version(Version::HTTP_2);
    let mut xff = Vec::new();
    for f in &h.fields {
        if f.kind == Kind::ForwardedFor {
            if !xff.is_empty() {
                xff.extend_from_slice(b", ");
            }
            xff.extend_from_slice(&buf[f.value.clone()]);
        }
        if f.drop || f.kind == Kind::Host {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&buf[f.name.clone()]),
            HeaderValue::from_bytes(&buf[f.value.clone()]),
        ) else {
            return Err("hifi: a header field cannot be sent over HTTP/2");
        };
        req = req.header(name, value);
    }
    if !xff.is_empty() {
        xff.extend_from_slice(b", ");
    }
    xff.extend_from_slice(conn.peer_ip.as_bytes());
    req = req
        .header("x-hifi-slot", slot.header.clone())
        .header(
            "x-forwarded-for",
            HeaderValue::from_bytes(&xff).map_err(|_| "hifi: invalid x-forwarded-for")?,
        )
        .header("x-forwarded-proto", "http")
        .header(
            "x-forwarded-host",
            HeaderValue::from_str(&host).map_err(|_| "hifi: invalid host")?,
        );
    if slot.protocol == Protocol::Grpc {
        req = req.header("te", "trailers");
    }
    req.body(())
        .map_err(|_| "hifi: the request cannot be sent over HTTP/2")
}

/// The request body, read whole: `None` for none; on failure the status
/// to answer (0: the client went away) and why.
async fn read_whole(
    c: &mut Client,
    kind: BodyKind,
    timeout: std::time::Duration,
) -> Result<Option<Bytes>, (u16, &'static str)> {
    let mut body = BytesMut::new();
    let mut dec = ChunkedDecoder::new();
    loop {
        match kind {
            BodyKind::None => return Ok(None),
            BodyKind::Length(n) => {
                if n > MAX_BODY {
                    return Err((413, "hifi: request body too large for an HTTP/2 backend"));
                }
                let k = ((n - body.len() as u64).min(c.buf.len() as u64)) as usize;
                body.extend_from_slice(&c.buf[..k]);
                c.buf.advance(k);
                if body.len() as u64 == n {
                    return Ok(Some(body.freeze()));
                }
            }
            BodyKind::Chunked => {
                let mut used = 0;
                while used < c.buf.len() && !dec.is_done() {
                    match dec.step(&c.buf[used..]) {
                        Ok(Step::Data(k)) => {
                            body.extend_from_slice(&c.buf[used..used + k]);
                            used += k;
                        }
                        Ok(Step::Framing(k)) => used += k,
                        Err(_) => return Err((400, "hifi: invalid chunked body")),
                    }
                }
                c.buf.advance(used);
                if body.len() as u64 > MAX_BODY {
                    return Err((413, "hifi: request body too large for an HTTP/2 backend"));
                }
                if dec.is_done() {
                    return Ok(Some(body.freeze()));
                }
            }
        }
        if c.buf.capacity() - c.buf.len() < 1024 {
            c.buf.reserve(16 * 1024);
        }
        match tokio::time::timeout(timeout, c.stream.read_buf(&mut c.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err((0, "")),
            Ok(Ok(_)) => {}
            Err(_) => return Err((408, "hifi: the request body stalled")),
        }
    }
}
