//! One client connection on the HTTP/1 path: read a head within the
//! header-read timeout (counted from accept for the first request, from the
//! first byte for later ones, with the keep-alive idle timeout before it),
//! answer what cannot be forwarded (400/405/408/414/431/501/505, the proxy's
//! own 403/503), forward the rest (`exchange`), and keep the connection for
//! the next request only when both sides allow it. A connection that opens
//! with the HTTP/2 preface goes to hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::balancer::Headers;
use crate::proxy::decide::{Decision, RequestView, decide, refusal};
use crate::proxy::{self, ConnCtx};

use super::exchange::{self, Next};
use super::head::{self, HeadError, RequestHead};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long an idle connection waits for its next request before it also
/// watches for its listener closing.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// A client connection's buffers, kept across its requests.
pub(crate) struct Client {
    pub(crate) stream: TcpStream,
    /// Bytes read from the client and not yet used.
    pub(crate) buf: BytesMut,
    /// The current request's head (offsets into `buf`).
    pub(crate) head: RequestHead,
    /// Bytes being prepared for a write.
    pub(crate) out: Vec<u8>,
    /// The deadline of waiting for the client (its next request, the rest
    /// of a head, more of a request body).
    pub(crate) wait: Deadline,
    /// The deadline of the backend's answer.
    pub(crate) answer: Deadline,
}

/// A deadline timer kept for a connection's life. Each request moves it
/// later, which tokio's timer takes as an atomic update of the entry (the
/// timer wheel only moves it when its old time comes), where a timer made
/// for each wait is put into the wheel and taken out again: two such
/// timers per request were ~3.5 % of the proxy's CPU time.
pub(crate) struct Deadline(Pin<Box<tokio::time::Sleep>>);

impl Deadline {
    fn new() -> Self {
        // Not in the timer wheel until first awaited.
        Deadline(Box::pin(tokio::time::sleep_until(
            tokio::time::Instant::now() + Duration::from_secs(3600),
        )))
    }

    /// The timer, set to fire at `at`, to be awaited or raced.
    pub(crate) fn at(&mut self, at: tokio::time::Instant) -> Pin<&mut tokio::time::Sleep> {
        if self.0.deadline() != at {
            self.0.as_mut().reset(at);
        }
        self.0.as_mut()
    }
}

/// The result of waiting for bytes.
enum Read {
    Data,
    Eof,
    Timeout,
    Stopped,
}

/// Wait for bytes until `deadline`; with `stop` (and the time it is now),
/// also until the listener closes.
async fn read_more(
    c: &mut Client,
    deadline: tokio::time::Instant,
    stop: Option<(&CancellationToken, tokio::time::Instant)>,
) -> Read {
    if c.buf.capacity() - c.buf.len() < 1024 {
        c.buf.reserve(8192);
    }
    let r = match stop {
        Some((stop, now)) => {
            // The stop token is shared by every connection of the listener
            // and waiting on it takes its lock: a busy connection whose next
            // request comes within 200 ms never touches it, so workers do
            // not contend on it (or stall when the holder is preempted).
            let soon = deadline.min(now + STOP_CHECK);
            tokio::select! {
                biased;
                r = c.stream.read_buf(&mut c.buf) => Ok(r),
                _ = c.wait.at(soon) => {
                    if soon == deadline {
                        return Read::Timeout;
                    }
                    if stop.is_cancelled() {
                        return Read::Stopped;
                    }
                    tokio::select! {
                        biased;
                        r = c.stream.read_buf(&mut c.buf) => Ok(r),
                        _ = c.wait.at(deadline) => Err(()),
                        _ = stop.cancelled() => return Read::Stopped,
                    }
                }
            }
        }
        None => tokio::select! {
            biased;
            r = c.stream.read_buf(&mut c.buf) => Ok(r),
            _ = c.wait.at(deadline) => Err(()),
        },
    };
    match r {
        Ok(Ok(0)) | Ok(Err(_)) => Read::Eof,
        Ok(Ok(_)) => Read::Data,
        Err(_) => Read::Timeout,
    }
}

/// A request head as `decide` sees it.
pub(crate) struct HeadView<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) head: &'a RequestHead,
}

impl Headers for HeadView<'_> {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.head
            .fields
            .iter()
            .find(|f| self.buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| &self.buf[f.value.clone()])
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.head
            .fields
            .iter()
            .filter(move |f| self.buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| &self.buf[f.value.clone()])
    }
}

impl RequestView for HeadView<'_> {
    fn host(&self) -> Option<&str> {
        let r = self.head.authority.as_ref().or(self.head.host.as_ref())?;
        std::str::from_utf8(&self.buf[r.clone()]).ok()
    }

    fn path(&self) -> &str {
        std::str::from_utf8(&self.buf[self.head.path.clone()]).unwrap_or("/")
    }
}

/// Serve one client connection until it closes, times out, or `stop` asks
/// it to finish (after the request in progress).
pub(crate) async fn serve(stream: TcpStream, conn: Arc<ConnCtx>, stop: CancellationToken) {
    let limits = conn.listener.shared.limits;
    let mut c = Client {
        stream,
        buf: BytesMut::with_capacity(8192),
        head: RequestHead::default(),
        out: Vec::with_capacity(1024),
        wait: Deadline::new(),
        answer: Deadline::new(),
    };
    // The time when the connection last waited for a request.
    let mut idle_since = tokio::time::Instant::now();
    let mut idle_deadline = idle_since + limits.header_read_timeout;
    // The first request's head is due within the header-read timeout of
    // the accept; a later one's within that of its first byte, taken when
    // the head turns out to need more than one read (no clock read for a
    // head that arrives whole).
    let mut head_due = Some(idle_deadline);
    let mut first = true;
    loop {
        // Empty lines before a request are ignored (RFC 9112 §2.2).
        while c.buf.starts_with(b"\r\n") {
            c.buf.advance(2);
        }
        if c.buf.is_empty() {
            match read_more(&mut c, idle_deadline, Some((&stop, idle_since))).await {
                Read::Data => {}
                Read::Eof | Read::Timeout | Read::Stopped => return,
            }
            continue;
        }
        let mut head_deadline = || {
            *head_due
                .get_or_insert_with(|| tokio::time::Instant::now() + limits.header_read_timeout)
        };
        if first
            && c.buf[0] == b'P'
            && PREFACE.starts_with(&c.buf[..c.buf.len().min(PREFACE.len())])
        {
            if c.buf.len() >= PREFACE.len() {
                return serve_h2(c, conn, stop).await;
            }
            match read_more(&mut c, head_deadline(), None).await {
                Read::Data => continue,
                _ => return,
            }
        }
        match head::parse(&c.buf, limits.head, &mut c.head) {
            Ok(()) => {}
            Err(HeadError::Partial) => match read_more(&mut c, head_deadline(), None).await {
                Read::Data => continue,
                Read::Timeout => {
                    answer_and_close(&mut c, 408, "the request head took too long").await;
                    return;
                }
                Read::Eof | Read::Stopped => return,
            },
            Err(HeadError::Invalid(status, why)) => {
                tracing::debug!(peer = ?c.stream.peer_addr().ok(), status, why, "request refused");
                conn.listener
                    .env
                    .bad_requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                answer_and_close(&mut c, status, why).await;
                return;
            }
        }
        first = false;
        let start = Instant::now();
        let next = request(&mut c, &conn, start).await;
        match next {
            Next::KeepAlive if !stop.is_cancelled() => {
                idle_since = tokio::time::Instant::now();
                idle_deadline = idle_since + limits.keepalive_timeout;
                head_due = None;
            }
            Next::KeepAlive | Next::Close => {
                linger_close(&mut c.stream).await;
                return;
            }
            Next::Abort => return,
        }
    }
}

/// One parsed request: the proxy's own answer, or forwarded.
async fn request(c: &mut Client, conn: &Arc<ConnCtx>, start: Instant) -> Next {
    let ctx = &conn.listener;
    let decision = {
        let table = ctx.env.table.load();
        let view = HeadView {
            buf: &c.buf,
            head: &c.head,
        };
        match decide(table.as_deref(), ctx.addr, &view, &ctx.shared.ids) {
            Decision::Forward(slot, cookie) => Ok((slot, cookie)),
            Decision::Refuse(why) => Err(refusal(ctx, why, view.path())),
        }
    };
    match decision {
        Ok((slot, cookie)) => exchange::forward(c, conn, slot, cookie, start).await,
        Err((status, msg)) => {
            let keep = c.head.keep_alive && c.head.body == head::BodyKind::None;
            c.buf.advance(c.head.len);
            answer(c, status.as_u16(), msg.as_bytes(), keep).await
        }
    }
}

/// Write a short plain-text answer made by the proxy; the connection stays
/// open when `keep` (the request had no body left unread).
pub(crate) async fn answer(c: &mut Client, status: u16, msg: &[u8], keep: bool) -> Next {
    c.out.clear();
    write_plain(&mut c.out, status, msg, keep);
    match c.stream.write_all(&c.out).await {
        Ok(()) if keep => Next::KeepAlive,
        Ok(()) => Next::Close,
        Err(_) => Next::Abort,
    }
}

/// An answer of the proxy's own: status line, plain-text body, and
/// `connection: close` unless `keep`.
pub(crate) fn write_plain(out: &mut Vec<u8>, status: u16, msg: &[u8], keep: bool) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", msg.len() + 1).as_bytes());
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg);
    out.push(b'\n');
}

/// Refuse a request that cannot be framed or served, and close.
async fn answer_and_close(c: &mut Client, status: u16, why: &str) {
    let msg = format!("hifi: {why}");
    if answer(c, status, msg.as_bytes(), false).await == Next::Close {
        linger_close(&mut c.stream).await;
    }
}

/// Close after an answer without losing it: a socket closed with unread
/// bytes sends a reset that can destroy the answer still in flight, so the
/// write side is shut first and what the client still sends is read and
/// dropped for a moment.
pub(crate) async fn linger_close(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < (1 << 20) {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// An HTTP/2 (h2c prior knowledge) client: served by hyper, with the bytes
/// already read put back in front of the stream.
async fn serve_h2(c: Client, conn: Arc<ConnCtx>, stop: CancellationToken) {
    let io = Rewind {
        prefix: c.buf.freeze(),
        inner: c.stream,
    };
    let svc = service_fn(move |req| proxy::handle(conn.clone(), req));
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    let served = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        _ = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "h2 client connection ended with an error");
    }
}

/// A stream with bytes put back in front of it.
struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
