//! One request forwarded on the HTTP/1 path, start to end, on the client's
//! task: a backend connection from the worker's pool (or a new one), the
//! head written as bytes with the body bytes already read, the request body
//! pumped with its framing (the body timeout counted between reads), the
//! response head awaited within the service's timeout (counted once the
//! request is sent) while watching for the client giving up, the response
//! rewritten and streamed back, and every ending attributed (`metrics`):
//!
//! | ending | counted as |
//! |---|---|
//! | backend answered | its status class (5xx: error) |
//! | refused, reset or no answer before the response head; no healthy backend | `proxy_error` (502/503/504), error |
//! | backend broke off the response body | `backend_failed`, error |
//! | client went away or stalled sending the body | `client_closed` |
//! | client's chunked body could not be framed | `bad_request` (400) |
//! | client went away waiting for the response head | `abandoned` (latency: time waited) |
//! | client went away while the response was sent | `client_closed` (response counted) |
//!
//! An idempotent request without a body whose connection fails before any
//! response byte is retried once on a fresh connection (PRIOR-ART pitfall 1).
//!
//! The request body is sent before the response is read, except that a
//! backend answering (or closing) while the body is still coming (a 413 or
//! 401 to an upload) is heard at once: the rest of the body is not read and
//! the client connection closes after the answer. A backend that streams its
//! answer while it still reads a body larger than the socket buffers is not
//! served (full duplex is not implemented); it stalls until the timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::compiled::{Backend, CompiledSlot};
use crate::metrics::Class;
use crate::proxy::ConnCtx;
use crate::table::Protocol;
use crate::tracking::{InflightGuard, SlotState};

use super::chunked::{ChunkedDecoder, Step};
use super::conn::{Client, answer};
use super::head::{BodyKind, Kind, MAX_FIELDS};
use super::pool::BackendConn;
use super::tunnel;

/// What the client connection does after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close politely (shut the write side, drain what the client sends).
    Close,
    /// Drop the connection now (the client is gone, or a stream was cut).
    Abort,
}

/// What the exchange remembers of the request once its head is consumed.
#[derive(Debug, Clone, Copy)]
struct ReqInfo {
    body: BodyKind,
    keep_alive: bool,
    minor: u8,
    websocket: bool,
    ws_handshake: bool,
    is_head: bool,
    retryable: bool,
    accepts_sse: bool,
    expect_continue: bool,
}

/// Framing of a response body from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RespBody {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
struct RespInfo {
    status: u16,
    body: RespBody,
    /// The backend connection may serve another request afterwards.
    reusable: bool,
    /// The backend accepted a WebSocket handshake (`Sec-WebSocket-Accept`).
    ws_accept: bool,
    /// Chunk-encode the body for the client (HTTP/1.1 client, body of
    /// unknown length).
    chunk_to_client: bool,
    /// `text/event-stream`.
    sse: bool,
    /// The backend answered before the client's whole body was read: the
    /// client connection closes after the answer.
    client_body_unread: bool,
}

/// Why a step of the exchange failed.
#[derive(Debug)]
enum Fail {
    /// The backend could not be reached.
    Connect(String),
    /// The backend closed or reset before answering.
    Exchange(String),
    /// No response head in time.
    Timeout,
    /// The client went away: while waiting for the response head, or
    /// while sending its body.
    ClientGone { waiting: bool },
    /// The client stalled sending its body.
    ClientStalled,
    /// The client's chunked body is malformed.
    BadChunk(&'static str),
    /// The backend's response is malformed.
    BadResponse(&'static str),
}

/// Forward the parsed request at the head of `c.buf` to a backend of `slot`.
pub(super) async fn forward(
    c: &mut Client,
    conn: &Arc<ConnCtx>,
    slot: Arc<CompiledSlot>,
    set_cookie: Option<HeaderValue>,
    start: Instant,
) -> Next {
    let shared = &conn.listener.shared;
    let guard = InflightGuard::new(&*slot.state);
    let metrics = &slot.state.metrics;
    let has_body = c.head.body != BodyKind::None;
    let Some(backend) = slot.pick() else {
        metrics.finished(Class::ProxyError, start.elapsed());
        c.buf.advance(c.head.len);
        let msg = format!(
            "hifi: no healthy backend for service {} in {}",
            slot.state.service, slot.state.env
        );
        return answer(c, 503, msg.as_bytes(), c.head.keep_alive && !has_body).await;
    };
    if slot.protocol != Protocol::Http1 {
        let r = super::bridge::forward(c, conn, &slot, backend, set_cookie, start).await;
        drop(guard);
        return r;
    }
    let info = request_info(c);
    if info.body == BodyKind::Chunked
        && let Err(e) = check_chunks(&c.buf[c.head.len..])
    {
        // The part of the body at hand is already malformed: refused before
        // any backend sees the request. (A body that breaks later reaches
        // the backend unfinished, without its last chunk, and the backend
        // connection is dropped: it cannot be taken for a whole request.)
        c.buf.advance(c.head.len);
        return failed(
            c,
            &slot,
            backend.addr,
            Fail::BadChunk(e.0),
            &info,
            std::time::Duration::ZERO,
            start,
        )
        .await;
    }
    // The head for the backend, then the request head leaves the buffer.
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    write_request_head(&mut out, c, conn, &slot, backend.addr);
    c.out = out;
    c.buf.advance(c.head.len);
    let head_len = c.out.len();
    if let BodyKind::Length(n) = info.body {
        // Body bytes already read go out with the head, in one write.
        let k = (n.min(c.buf.len() as u64)) as usize;
        c.out.extend_from_slice(&c.buf[..k]);
    }
    let timeout = slot.timeout.unwrap_or(shared.upstream_timeout);

    let mut retried = false;
    let (mut bc, resp) = loop {
        // The first attempt goes out at once: the request's start stands
        // in for the moment it is sent (one clock read less per request).
        let now = if retried { Instant::now() } else { start };
        let attempt = exchange_head(c, conn, backend, &info, timeout, head_len, now, retried).await;
        match attempt {
            Ok(pair) => break pair,
            Err((Fail::Exchange(_), true)) if info.retryable && !retried => {
                tracing::debug!("retrying idempotent request on a fresh connection");
                retried = true;
                continue;
            }
            Err((fail, _)) => {
                return failed(c, &slot, backend.addr, fail, &info, timeout, start).await;
            }
        }
    };
    let answered = Instant::now();
    metrics.finished(Class::of(resp.status), answered - start);
    // hifi's fields end the response head (`c.out`).
    c.out.extend_from_slice(b"x-hifi-slot: ");
    c.out.extend_from_slice(slot.name.as_bytes());
    c.out.extend_from_slice(b"\r\n");
    if let Some(cookie) = &set_cookie {
        c.out.extend_from_slice(b"set-cookie: ");
        c.out.extend_from_slice(cookie.as_bytes());
        c.out.extend_from_slice(b"\r\n");
    }
    let raw_until_close =
        matches!(resp.body, RespBody::Chunked | RespBody::UntilClose) && !resp.chunk_to_client;
    if resp.client_body_unread && info.keep_alive && !raw_until_close {
        // The rest of the body is not read: this connection ends here.
        c.out.extend_from_slice(b"connection: close\r\n");
    }

    if resp.status == 101 {
        // Only a WebSocket upgrade is asked for (others never reach a
        // backend); the connections now carry the tunnel.
        drop(guard);
        c.out.extend_from_slice(b"\r\n");
        c.out.extend_from_slice(&bc.buf);
        bc.buf.clear();
        if c.stream.write_all(&c.out).await.is_err() {
            metrics.client_closed(true);
            return Next::Abort;
        }
        let mut client_extra = std::mem::take(&mut c.buf);
        if !client_extra.is_empty() && bc.stream.write_all(&client_extra).await.is_err() {
            return Next::Abort;
        }
        client_extra.clear();
        tunnel::run(
            &mut c.stream,
            &mut bc.stream,
            &slot.state,
            info.ws_handshake && resp.ws_accept,
            &shared.shutdown,
        )
        .await;
        return Next::Abort;
    }

    // The response body, streamed.
    let end = stream_response(c, &mut bc, &resp, &info, guard.state()).await;
    match end {
        BodyEnd::Complete => {
            if resp.reusable && bc.buf.is_empty() {
                backend.raw.checkin(bc, answered);
            }
            let raw_until_close = matches!(resp.body, RespBody::Chunked | RespBody::UntilClose)
                && !resp.chunk_to_client;
            if info.keep_alive && !raw_until_close && !resp.client_body_unread {
                Next::KeepAlive
            } else {
                Next::Close
            }
        }
        BodyEnd::CleanDrain => Next::KeepAlive,
        BodyEnd::ClientGone => {
            metrics.client_closed(true);
            Next::Abort
        }
        BodyEnd::BackendBroke => {
            metrics.failed_midway();
            tracing::warn!(env = %slot.state.env, service = %slot.state.service, slot = %slot.name,
                backend = %backend.addr, "backend broke off its response");
            Next::Abort
        }
        BodyEnd::Drained => {
            tracing::info!(env = %slot.state.env, service = %slot.state.service, slot = %slot.name,
                "streaming response closed at the drain deadline");
            Next::Abort
        }
    }
}

fn request_info(c: &Client) -> ReqInfo {
    let h = &c.head;
    let buf = &c.buf[..];
    let mut accepts_sse = false;
    let mut ws_key = false;
    for f in &h.fields {
        let name = &buf[f.name.clone()];
        if f.kind == Kind::Other {
            if name.eq_ignore_ascii_case(b"accept") {
                accepts_sse |= buf[f.value.clone()]
                    .windows(17)
                    .any(|w| w.eq_ignore_ascii_case(b"text/event-stream"));
            } else if name.eq_ignore_ascii_case(b"sec-websocket-key") {
                ws_key = true;
            }
        }
    }
    ReqInfo {
        body: h.body,
        keep_alive: h.keep_alive,
        minor: h.minor,
        websocket: h.websocket,
        ws_handshake: h.websocket && ws_key,
        is_head: h.is_head,
        retryable: h.idempotent && h.body == BodyKind::None && !h.websocket,
        accepts_sse,
        expect_continue: h.expect_continue,
    }
}

/// The request head for the backend: request line in origin form, the
/// client's fields less the hop-by-hop ones, and hifi's.
fn write_request_head(
    out: &mut Vec<u8>,
    c: &Client,
    conn: &ConnCtx,
    slot: &CompiledSlot,
    backend: SocketAddr,
) {
    let h = &c.head;
    let buf = &c.buf[..];
    out.extend_from_slice(&buf[h.method.clone()]);
    out.push(b' ');
    let origin = &buf[h.origin.clone()];
    if origin.is_empty() {
        out.push(b'/');
    } else {
        out.extend_from_slice(origin);
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut xff: Option<Vec<u8>> = None;
    for f in &h.fields {
        if f.kind == Kind::ForwardedFor {
            let v = xff.get_or_insert_with(Vec::new);
            if !v.is_empty() {
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(&buf[f.value.clone()]);
        }
        if f.drop {
            continue;
        }
        out.extend_from_slice(&buf[f.name.clone()]);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&buf[f.value.clone()]);
        out.extend_from_slice(b"\r\n");
    }
    let host = h
        .host
        .as_ref()
        .or(h.authority.as_ref())
        .map(|r| &buf[r.clone()]);
    if h.host.is_none() {
        out.extend_from_slice(b"host: ");
        match host {
            Some(a) => out.extend_from_slice(a),
            None => out.extend_from_slice(backend.to_string().as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-hifi-slot: ");
    out.extend_from_slice(slot.name.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-for: ");
    if let Some(prev) = xff {
        out.extend_from_slice(&prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(conn.peer_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
    if let Some(host) = host {
        out.extend_from_slice(b"x-forwarded-host: ");
        out.extend_from_slice(host);
        out.extend_from_slice(b"\r\n");
    }
    match h.body {
        BodyKind::None => {}
        BodyKind::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyKind::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if h.websocket {
        out.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A backend connection: from the pool (idle for less than the pool's
/// idle timeout at `now`), or new. The flag says whether it was pooled.
async fn connection(
    backend: &Backend,
    conn: &ConnCtx,
    now: Instant,
    fresh: bool,
    probe: bool,
) -> Result<(BackendConn, bool), Fail> {
    let shared = &conn.listener.shared;
    while !fresh && let Some(bc) = backend.raw.checkout(now, shared.pool_idle_timeout) {
        // A request that cannot be retried first checks that the backend
        // has not closed the idle connection (PRIOR-ART pitfall 1): a
        // non-blocking read must find nothing to read, not the end.
        if probe {
            match bc.stream.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => continue,
            }
        }
        return Ok((bc, true));
    }
    let stream = match tokio::time::timeout(
        shared.connect_timeout,
        TcpStream::connect(backend.addr),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Fail::Connect(format!("tcp connect error: {e}"))),
        Err(_) => {
            return Err(Fail::Connect(format!(
                "connect timed out after {} ms",
                shared.connect_timeout.as_millis()
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    Ok((
        BackendConn {
            stream,
            buf: BytesMut::with_capacity(8192),
        },
        false,
    ))
}

/// Send the request (head in `c.out[..head_len]`, body bytes after it) at
/// `now` and read the response head. On failure, the flag says whether
/// nothing of the request's body was consumed, so that it may be retried.
#[allow(clippy::too_many_arguments)]
async fn exchange_head(
    c: &mut Client,
    conn: &ConnCtx,
    backend: &Backend,
    info: &ReqInfo,
    timeout: std::time::Duration,
    head_len: usize,
    now: Instant,
    fresh: bool,
) -> Result<(BackendConn, RespInfo), (Fail, bool)> {
    let (mut bc, _pooled) = connection(backend, conn, now, fresh, !info.retryable)
        .await
        .map_err(|f| (f, false))?;
    let limits = conn.listener.shared.limits;
    // The head and the body bytes at hand, in one write.
    if let Err(e) = bc.stream.write_all(&c.out).await {
        return Err((Fail::Exchange(format!("write: {e}")), true));
    }
    // Set when the backend answered (or gave up) before the whole body was
    // sent: the rest of the body is not read, and the client connection
    // closes after the answer.
    let mut backend_write_failed = false;
    match info.body {
        BodyKind::None => {}
        BodyKind::Length(n) => {
            let sent = c.out.len() - head_len;
            c.buf.advance(sent);
            let mut left = n - sent as u64;
            if left > 0 && info.expect_continue && c.buf.is_empty() {
                let _ = c.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
            }
            while left > 0 {
                if c.buf.is_empty()
                    && read_body_or_answer(c, &mut bc, limits.body_read_timeout)
                        .await
                        .map_err(|f| (f, false))?
                {
                    backend_write_failed = true;
                    break;
                }
                let k = (left.min(c.buf.len() as u64)) as usize;
                if bc.stream.write_all(&c.buf[..k]).await.is_err() {
                    backend_write_failed = true;
                    break;
                }
                c.buf.advance(k);
                left -= k as u64;
            }
        }
        BodyKind::Chunked => {
            if info.expect_continue && c.buf.is_empty() {
                let _ = c.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
            }
            let mut dec = ChunkedDecoder::new();
            while !dec.is_done() {
                if c.buf.is_empty()
                    && read_body_or_answer(c, &mut bc, limits.body_read_timeout)
                        .await
                        .map_err(|f| (f, false))?
                {
                    backend_write_failed = true;
                    break;
                }
                c.out.clear();
                let mut used = 0;
                while used < c.buf.len() && !dec.is_done() {
                    match dec.step(&c.buf[used..]) {
                        Ok(Step::Data(n)) => {
                            c.out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                            c.out.extend_from_slice(&c.buf[used..used + n]);
                            c.out.extend_from_slice(b"\r\n");
                            used += n;
                        }
                        Ok(Step::Framing(n)) => used += n,
                        Err(e) => return Err((Fail::BadChunk(e.0), false)),
                    }
                }
                if dec.is_done() {
                    c.out.extend_from_slice(b"0\r\n\r\n");
                }
                c.buf.advance(used);
                if !c.out.is_empty() && bc.stream.write_all(&c.out).await.is_err() {
                    backend_write_failed = true;
                    break;
                }
            }
        }
    }
    // The response head, within `timeout` of the request being sent,
    // watching for the client giving up meanwhile.
    let sent = match info.body {
        BodyKind::None => tokio::time::Instant::from_std(now),
        _ => tokio::time::Instant::now(),
    };
    let deadline = sent + timeout;
    let mut watch_client = true;
    loop {
        if !bc.buf.is_empty() {
            c.out.clear();
            match parse_response(&bc.buf, info, &mut c.out) {
                Ok(Some((len, mut resp))) => {
                    if (100..200).contains(&resp.status) && resp.status != 101 {
                        // Interim answers (100, 103) go to HTTP/1.1 clients as they are.
                        if info.minor == 1 {
                            let _ = c.stream.write_all(&bc.buf[..len]).await;
                        }
                        bc.buf.advance(len);
                        continue;
                    }
                    if resp.status == 101 && !info.websocket {
                        return Err((
                            Fail::BadResponse("101 to a request that asked no upgrade"),
                            false,
                        ));
                    }
                    if backend_write_failed {
                        resp.reusable = false;
                        resp.client_body_unread = true;
                    }
                    let mut bc = bc;
                    // The response head for the client is in `c.out`.
                    bc.buf.advance(len);
                    return Ok((bc, resp));
                }
                Ok(None) => {}
                Err(why) => return Err((Fail::BadResponse(why), false)),
            }
        }
        if bc.buf.capacity() - bc.buf.len() < 1024 {
            bc.buf.reserve(8192);
        }
        if bc.buf.len() > 64 * 1024 {
            return Err((Fail::BadResponse("response head too large"), false));
        }
        tokio::select! {
            biased;
            r = bc.stream.read_buf(&mut bc.buf) => match r {
                Ok(0) => {
                    let nothing = bc.buf.is_empty();
                    return Err((Fail::Exchange("closed the connection before answering".into()), nothing && !backend_write_failed));
                }
                Ok(_) => {}
                Err(e) => {
                    let nothing = bc.buf.is_empty();
                    return Err((Fail::Exchange(format!("read: {e}")), nothing && !backend_write_failed));
                }
            },
            r = c.stream.ready(Interest::READABLE), if watch_client => {
                match r {
                    Ok(ready) if ready.is_read_closed() => return Err((Fail::ClientGone { waiting: true }, false)),
                    Ok(_) => {
                        // Pipelined bytes or the client's close.
                        match c.stream.try_read_buf(&mut c.buf) {
                            Ok(0) => return Err((Fail::ClientGone { waiting: true }, false)),
                            Ok(_) => watch_client = c.buf.len() < 64 * 1024,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(_) => return Err((Fail::ClientGone { waiting: true }, false)),
                        }
                    }
                    Err(_) => return Err((Fail::ClientGone { waiting: true }, false)),
                }
            }
            _ = c.answer.at(deadline) => return Err((Fail::Timeout, false)),
        }
    }
}

/// Check the chunked body bytes at hand.
fn check_chunks(mut body: &[u8]) -> Result<(), super::chunked::ChunkError> {
    let mut d = ChunkedDecoder::new();
    while !body.is_empty() && !d.is_done() {
        let (Step::Data(n) | Step::Framing(n)) = d.step(body)?;
        body = &body[n..];
    }
    Ok(())
}

/// Read more of the client's body within the body timeout, unless the
/// backend speaks first: `Ok(true)` when it answered (the bytes are in
/// `bc.buf`) or closed before the body was sent, as a backend refusing an
/// upload does (413, 401); the rest of the body is then not forwarded.
async fn read_body_or_answer(
    c: &mut Client,
    bc: &mut BackendConn,
    timeout: std::time::Duration,
) -> Result<bool, Fail> {
    if c.buf.capacity() - c.buf.len() < 1024 {
        c.buf.reserve(16 * 1024);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::select! {
            biased;
            r = bc.stream.readable() => match r {
                Ok(()) => match bc.stream.try_read_buf(&mut bc.buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    _ => return Ok(true),
                },
                Err(_) => return Ok(true),
            },
            r = c.stream.read_buf(&mut c.buf) => {
                return match r {
                    Ok(0) | Err(_) => Err(Fail::ClientGone { waiting: false }),
                    Ok(_) => Ok(false),
                };
            }
            _ = c.wait.at(deadline) => return Err(Fail::ClientStalled),
        }
    }
}

/// Parse the response head at the start of `buf` (`None` when incomplete)
/// and, for a final answer, write the client's head into `out`.
fn parse_response(
    buf: &[u8],
    info: &ReqInfo,
    out: &mut Vec<u8>,
) -> Result<Option<(usize, RespInfo)>, &'static str> {
    // Left uninitialised, as for requests (`head::parse`).
    let mut raw = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut r = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut r, buf, &mut raw)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let status = r.code.unwrap_or(0);
    let minor = r.version.unwrap_or(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = minor == 0;
    let mut ws_accept = false;
    let mut sse = false;
    let mut has_te = false;
    // Whether `Connection` names fields of its own (beyond `close` and
    // `keep-alive`, which need no lookup): those are dropped too.
    let mut names_fields = false;
    let mut kinds = [Kind::Other; MAX_FIELDS];
    for (h, kind) in r.headers.iter().zip(kinds.iter_mut()) {
        let name = h.name.as_bytes();
        let value = h.value.trim_ascii();
        *kind = super::head::kind_of_name(name);
        match *kind {
            Kind::ContentLength => {
                if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
                    return Err("invalid Content-Length in the response");
                }
                let n = value.iter().fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
                if length.is_some_and(|p| p != n) {
                    return Err("conflicting Content-Length in the response");
                }
                length = Some(n);
            }
            Kind::TransferEncoding => {
                has_te = true;
                chunked = value
                    .rsplit(|c| *c == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                if !chunked {
                    close = true;
                }
            }
            Kind::Connection => {
                for t in value.split(|c| *c == b',') {
                    let t = t.trim_ascii();
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        if minor == 0 {
                            close = false;
                        }
                    } else if !t.is_empty() {
                        names_fields = true;
                    }
                }
            }
            Kind::Other => {
                if name.eq_ignore_ascii_case(b"sec-websocket-accept") {
                    ws_accept = true;
                } else if name.eq_ignore_ascii_case(b"content-type") {
                    sse =
                        value.len() >= 17 && value[..17].eq_ignore_ascii_case(b"text/event-stream");
                }
            }
            _ => {}
        }
    }
    let body = if info.is_head || status == 204 || status == 304 || status < 200 {
        RespBody::None
    } else if chunked {
        RespBody::Chunked
    } else if has_te {
        RespBody::UntilClose
    } else if let Some(n) = length {
        RespBody::Length(n)
    } else {
        RespBody::UntilClose
    };
    let chunk_to_client =
        info.minor == 1 && matches!(body, RespBody::Chunked | RespBody::UntilClose);
    let resp = RespInfo {
        status,
        body,
        reusable: !close && body != RespBody::UntilClose && status != 101,
        ws_accept,
        chunk_to_client,
        sse,
        client_body_unread: false,
    };
    if status >= 200 || status == 101 {
        let fields = ResponseFields {
            head: &r,
            kinds: &kinds,
            names_fields,
        };
        write_response_head(out, &fields, info, &resp);
    }
    Ok(Some((len, resp)))
}

/// `n` in decimal, without the formatting machinery.
pub(super) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A parsed response head with what the proxy made of each field.
struct ResponseFields<'a, 'h, 'b> {
    head: &'a httparse::Response<'h, 'b>,
    /// The kind of each field, in order.
    kinds: &'a [Kind; MAX_FIELDS],
    /// `Connection` names fields to drop.
    names_fields: bool,
}

impl ResponseFields<'_, '_, '_> {
    /// `name` is listed in a `Connection` field.
    fn named_by_connection(&self, name: &[u8]) -> bool {
        self.names_fields
            && self
                .head
                .headers
                .iter()
                .zip(self.kinds)
                .filter(|(_, kind)| **kind == Kind::Connection)
                .flat_map(|(h, _)| h.value.split(|c| *c == b','))
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    }
}

/// The response head for the client: the backend's status line and fields
/// less the hop-by-hop ones, `x-hifi-slot`, the sticky cookie and framing.
fn write_response_head(
    out: &mut Vec<u8>,
    fields: &ResponseFields<'_, '_, '_>,
    info: &ReqInfo,
    resp: &RespInfo,
) {
    let r = fields.head;
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(resp.status));
    out.push(b' ');
    out.extend_from_slice(r.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let keep_length = resp.body == RespBody::None;
    for (h, kind) in r.headers.iter().zip(fields.kinds) {
        let name = h.name.as_bytes();
        let keep = match kind {
            Kind::ContentLength => keep_length && resp.status != 204 && resp.status >= 200,
            Kind::Connection
            | Kind::TransferEncoding
            | Kind::Upgrade
            | Kind::HopByHop
            | Kind::Slot => false,
            _ => !fields.named_by_connection(name),
        };
        if keep {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    match resp.body {
        RespBody::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        RespBody::Chunked | RespBody::UntilClose if resp.chunk_to_client => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        _ => {}
    }
    if resp.status == 101 {
        out.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n");
    } else if !info.keep_alive
        || (matches!(resp.body, RespBody::Chunked | RespBody::UntilClose) && !resp.chunk_to_client)
    {
        out.extend_from_slice(b"connection: close\r\n");
    } else if info.minor == 0 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
}

/// How a response body ended.
enum BodyEnd {
    Complete,
    /// An SSE stream ended cleanly at the drain deadline.
    CleanDrain,
    ClientGone,
    BackendBroke,
    Drained,
}

/// Finish the response head (hifi's fields) and stream the body.
async fn stream_response(
    c: &mut Client,
    bc: &mut BackendConn,
    resp: &RespInfo,
    info: &ReqInfo,
    state: &SlotState,
) -> BodyEnd {
    // `c.out` holds the head less its last CRLF.
    c.out.extend_from_slice(b"\r\n");
    let clean_sse = resp.sse && info.accepts_sse && resp.chunk_to_client;
    let mut drain: Option<CancellationToken> = None;
    match resp.body {
        RespBody::None => {
            if c.stream.write_all(&c.out).await.is_err() {
                return BodyEnd::ClientGone;
            }
            BodyEnd::Complete
        }
        RespBody::Length(mut left) => {
            let k = (left.min(bc.buf.len() as u64)) as usize;
            c.out.extend_from_slice(&bc.buf[..k]);
            bc.buf.advance(k);
            left -= k as u64;
            if c.stream.write_all(&c.out).await.is_err() {
                return BodyEnd::ClientGone;
            }
            while left > 0 {
                match read_backend(bc, state, &mut drain).await {
                    Ok(true) => {}
                    Ok(false) => return BodyEnd::BackendBroke,
                    Err(()) => return BodyEnd::Drained,
                }
                let k = (left.min(bc.buf.len() as u64)) as usize;
                if c.stream.write_all(&bc.buf[..k]).await.is_err() {
                    return BodyEnd::ClientGone;
                }
                bc.buf.advance(k);
                left -= k as u64;
            }
            BodyEnd::Complete
        }
        RespBody::Chunked | RespBody::UntilClose => {
            let mut dec = (resp.body == RespBody::Chunked).then(ChunkedDecoder::new);
            loop {
                // Everything at hand, re-framed for the client.
                let mut used = 0;
                while used < bc.buf.len() {
                    let data = match &mut dec {
                        Some(d) if d.is_done() => break,
                        Some(d) => match d.step(&bc.buf[used..]) {
                            Ok(Step::Data(n)) => n,
                            Ok(Step::Framing(n)) => {
                                used += n;
                                continue;
                            }
                            Err(_) => return BodyEnd::BackendBroke,
                        },
                        None => bc.buf.len() - used,
                    };
                    if resp.chunk_to_client {
                        c.out.extend_from_slice(format!("{data:x}\r\n").as_bytes());
                        c.out.extend_from_slice(&bc.buf[used..used + data]);
                        c.out.extend_from_slice(b"\r\n");
                    } else {
                        c.out.extend_from_slice(&bc.buf[used..used + data]);
                    }
                    used += data;
                }
                bc.buf.advance(used);
                let done = dec.as_ref().is_some_and(ChunkedDecoder::is_done);
                if done && resp.chunk_to_client {
                    c.out.extend_from_slice(b"0\r\n\r\n");
                }
                if !c.out.is_empty() {
                    if c.stream.write_all(&c.out).await.is_err() {
                        return BodyEnd::ClientGone;
                    }
                    c.out.clear();
                }
                if done {
                    return BodyEnd::Complete;
                }
                match read_backend(bc, state, &mut drain).await {
                    Ok(true) => {}
                    Ok(false) if dec.is_none() => {
                        if resp.chunk_to_client && c.stream.write_all(b"0\r\n\r\n").await.is_err() {
                            return BodyEnd::ClientGone;
                        }
                        return BodyEnd::Complete;
                    }
                    Ok(false) => return BodyEnd::BackendBroke,
                    Err(()) if clean_sse => {
                        // An event stream ends cleanly: its client reconnects.
                        if c.stream.write_all(b"0\r\n\r\n").await.is_err() {
                            return BodyEnd::ClientGone;
                        }
                        return BodyEnd::CleanDrain;
                    }
                    Err(()) => return BodyEnd::Drained,
                }
            }
        }
    }
}

/// Read more of the response body: `Ok(false)` at the backend's close,
/// `Err` at the slot's drain deadline. The drain token is only taken once a
/// read has to wait (a streaming or slow body).
async fn read_backend(
    bc: &mut BackendConn,
    state: &SlotState,
    drain: &mut Option<CancellationToken>,
) -> Result<bool, ()> {
    if bc.buf.capacity() - bc.buf.len() < 1024 {
        bc.buf.reserve(16 * 1024);
    }
    match bc.stream.try_read_buf(&mut bc.buf) {
        Ok(0) => return Ok(false),
        Ok(_) => return Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(_) => return Ok(false),
    }
    let token = drain.get_or_insert_with(|| state.drain_token()).clone();
    if token.is_cancelled() {
        return Err(());
    }
    tokio::select! {
        r = bc.stream.read_buf(&mut bc.buf) => Ok(matches!(r, Ok(n) if n > 0)),
        _ = token.cancelled() => Err(()),
    }
}

/// The proxy's answer when the exchange failed before a response head, and
/// the attribution of the failure.
#[allow(clippy::too_many_arguments)]
async fn failed(
    c: &mut Client,
    slot: &CompiledSlot,
    backend: SocketAddr,
    fail: Fail,
    info: &ReqInfo,
    timeout: std::time::Duration,
    start: Instant,
) -> Next {
    let metrics = &slot.state.metrics;
    let (env, service, name) = (&slot.state.env, &slot.state.service, &slot.name);
    // The request body may be partly unread: keep the connection only when
    // it had none.
    let keep = info.keep_alive && info.body == BodyKind::None;
    let (status, msg) = match fail {
        Fail::ClientGone { waiting } => {
            if waiting {
                metrics.abandoned(start.elapsed());
            } else {
                metrics.client_closed(false);
            }
            return Next::Abort;
        }
        Fail::ClientStalled => {
            metrics.client_closed(false);
            let msg = format!("hifi: the request body stalled for {service} in {env}");
            return answer(c, 408, msg.as_bytes(), false).await;
        }
        Fail::BadChunk(why) => {
            metrics.bad_request();
            tracing::debug!(%env, %service, why, "client sent a malformed chunked body");
            let msg = format!("hifi: invalid chunked body: {why}");
            return answer(c, 400, msg.as_bytes(), false).await;
        }
        Fail::Connect(e) => {
            tracing::warn!(%env, %service, slot = %name, %backend, error = %e, "backend refused");
            (
                502,
                format!(
                    "hifi: backend of service {service} in {env} (slot {name}) refused the connection"
                ),
            )
        }
        Fail::Exchange(e) => {
            tracing::warn!(%env, %service, slot = %name, %backend, error = %e, "backend failed");
            (
                502,
                format!(
                    "hifi: backend of service {service} in {env} (slot {name}) closed the connection without an answer"
                ),
            )
        }
        Fail::BadResponse(why) => {
            tracing::warn!(%env, %service, slot = %name, %backend, why, "backend answered nonsense");
            (
                502,
                format!(
                    "hifi: backend of service {service} in {env} (slot {name}) sent an invalid response"
                ),
            )
        }
        Fail::Timeout => (
            504,
            format!(
                "hifi: backend of service {service} in {env} (slot {name}) did not answer within {} ms",
                timeout.as_millis()
            ),
        ),
    };
    metrics.finished(Class::ProxyError, start.elapsed());
    answer(c, status, msg.as_bytes(), keep).await
}
