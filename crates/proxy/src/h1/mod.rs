//! The HTTP/1.1 forwarding path: a purpose-built server and client for the
//! common case (HTTP/1.1 client, HTTP/1.1 backend), run on the client
//! connection's own task.
//!
//! hyper's server and client cost about 3 µs per request more than nginx
//! (the client connection's dispatch channel and separate task, `HeaderMap`
//! building, allocations; `bench/RESULTS.md`). Here a request head is
//! parsed with `httparse` into offsets of the connection's buffer
//! (`head`), validated strictly (RFC 9112), routed with the same pure
//! `decide` as the HTTP/2 path, and written to a pooled backend connection
//! as bytes (hop-by-hop fields removed, hifi's fields added) in one write;
//! the response head is rewritten the same way and sent with the body bytes
//! already read in one write. Bodies stream both ways with explicit framing
//! (`Content-Length`, chunked re-encoded by the strict `chunked` decoder,
//! until-close). A connection that opens with the HTTP/2 preface is handed
//! to hyper (`conn::serve` → the `proxy` module). Services whose backends
//! speak h2c or gRPC are reached over HTTP/2 (`bridge`).
//!
//! - `head` — request heads: parsing and strict validation (pure).
//! - `chunked` — the strict chunked decoder (pure).
//! - `conn` — the client connection: heads, timeouts, answers, keep-alive.
//! - `exchange` — one request forwarded: backend connection, bodies, the
//!   response, outcome attribution.
//! - `bridge` — HTTP/1.1 clients of HTTP/2 (h2c, gRPC) backends.
//! - `pool` — idle backend connections, one shard per worker.
//! - `tunnel` — upgraded (WebSocket) connections and their close frames.

mod bridge;
pub mod chunked;
pub(crate) mod conn;
mod exchange;
pub mod head;
pub(crate) mod pool;
mod tunnel;

use std::time::Duration;

/// Limits and timeouts of client connections (from `ProxyOptions`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) head: head::Limits,
}
