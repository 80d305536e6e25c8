//! Request and response bodies of the proxy.
//!
//! Response bodies are streamed frame by frame, never collected, so SSE and
//! chunked responses reach the client as the backend writes them (PRIOR-ART
//! pitfall 4). The response body owns the request's in-flight guard, so a
//! request counts as in flight until its body has been fully sent. A body
//! that has to wait for the backend registers with its slot's drain token and
//! ends with an error (closing the client connection) when the drain deadline
//! passes; bodies that complete without waiting never touch the token, which
//! keeps the common case free of any shared registration.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::tracking::InflightGuard;
use crate::upstream::Lease;

/// Boxed error type of the proxy's bodies.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Body sent to a backend.
#[derive(Debug)]
pub(crate) enum ReqBody {
    /// The client's body, streamed.
    Incoming(Incoming),
    /// No body (also used for the retry of a bodiless request).
    Empty,
    /// A body read whole (an HTTP/1.1 client's request to an HTTP/2
    /// backend).
    Full(Option<Bytes>),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Incoming(b) => Pin::new(b).poll_frame(cx),
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Incoming(b) => b.is_end_stream(),
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Incoming(b) => b.size_hint(),
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

/// Body sent to a client.
pub(crate) enum ProxyBody {
    /// A short answer made by the proxy (errors, admin).
    Full(Option<Bytes>),
    /// A backend's body, streamed.
    Upstream(UpstreamBody),
}

/// A backend's response body with its bookkeeping.
pub(crate) struct UpstreamBody {
    inner: Incoming,
    guard: InflightGuard,
    drain: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// The backend connection, back to its pool when this body is dropped.
    _lease: Option<Lease>,
    /// A gRPC answer: a non-zero `grpc-status` in its trailers is an error
    /// of the slot.
    grpc: bool,
}

/// Whether gRPC metadata carries a failure (`grpc-status` other than 0).
pub(crate) fn grpc_failed(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() != b"0")
}

/// The error a drained streaming body ends with.
#[derive(Debug, thiserror::Error)]
#[error("hifi: slot drained, streaming response closed at the drain deadline")]
pub(crate) struct Drained;

impl ProxyBody {
    /// A complete body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Some(bytes.into()))
    }

    /// A backend's body counted as in flight until it ends.
    pub(crate) fn upstream(
        inner: Incoming,
        guard: InflightGuard,
        lease: Option<Lease>,
        grpc: bool,
    ) -> Self {
        ProxyBody::Upstream(UpstreamBody {
            inner,
            guard,
            drain: None,
            _lease: lease,
            grpc,
        })
    }
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyBody::Full(b) => f.debug_tuple("Full").field(b).finish(),
            ProxyBody::Upstream(_) => f.write_str("Upstream(..)"),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Upstream(up) => up.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Upstream(up) => up.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream(up) => up.inner.size_hint(),
        }
    }
}

impl UpstreamBody {
    /// Count a non-zero `grpc-status` in the trailers as an error.
    pub(crate) fn watch_grpc(&mut self, grpc: bool) {
        self.grpc = grpc;
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(drain) = &mut self.drain
            && drain.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(Box::new(Drained))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if self.grpc
                    && let Some(Ok(f)) = &frame
                    && let Some(trailers) = f.trailers_ref()
                    && grpc_failed(trailers)
                {
                    self.guard.state().metrics.grpc_error();
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                if self.drain.is_none() {
                    // First wait: this is a streaming (or slow) body; from now
                    // on it closes at the slot's drain deadline.
                    let mut fut = Box::pin(self.guard.state().drain_token().cancelled_owned());
                    if fut.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err(Box::new(Drained))));
                    }
                    self.drain = Some(fut);
                }
                Poll::Pending
            }
        }
    }
}
