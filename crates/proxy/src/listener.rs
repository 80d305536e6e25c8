//! Public and internal listeners: accept loops and client connections.
//!
//! Clients speak HTTP/1.1 or h2c (hyper-util's `auto` server). A listener
//! belongs to an environment and an address, not to a role: whether a
//! request is public or internal is read from the current table on every
//! request, so a table update that keeps an address never closes its
//! listener. Closing a listener (its address left the table, or the proxy
//! shuts down) stops accepting and asks each of its connections to finish
//! the request in progress and close. Accepted connections are handed to
//! the worker threads in turn (`workers`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::proxy::{self, ConnCtx, ListenerCtx};

/// A running listener; dropping it does not stop it, [`ListenerHandle::close`] does.
#[derive(Debug)]
pub(crate) struct ListenerHandle {
    stop: CancellationToken,
}

impl ListenerHandle {
    /// Stop accepting and wind down this listener's connections.
    pub(crate) fn close(&self) {
        self.stop.cancel();
    }
}

/// Bind a listener now (so the caller can refuse an update whose address is
/// taken) and start serving it later with [`start`].
pub(crate) async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr,
        what: what.to_owned(),
        source,
    })
}

/// Serve `listener` until its handle is closed or `shutdown` is cancelled.
pub(crate) fn start(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> ListenerHandle {
    let stop = shutdown.child_token();
    let handle = ListenerHandle { stop: stop.clone() };
    let conn_tracker = tracker.clone();
    tracker.spawn(async move {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // Slow-loris guard; generous so that slow clients still work.
            .header_read_timeout(Duration::from_secs(30))
            .pipeline_flush(true);
        let builder = Arc::new(builder);
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and similar: back off a
                        // little instead of spinning.
                        tracing::warn!(addr = %ctx.addr, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let conn = Arc::new(ConnCtx::new(ctx.clone(), peer));
            let builder = builder.clone();
            let stop = stop.clone();
            match ctx.shared.workers.pick() {
                // Hand the socket to a worker: it is registered with that
                // worker's reactor and served there for its whole life.
                Some(worker) => match stream.into_std() {
                    Ok(std) => {
                        worker.spawn(conn_tracker.track_future(async move {
                            match TcpStream::from_std(std) {
                                Ok(stream) => serve_conn(stream, peer, conn, &builder, stop).await,
                                Err(e) => {
                                    tracing::warn!(%peer, error = %e, "cannot hand a connection to a worker");
                                }
                            }
                        }));
                    }
                    Err(e) => tracing::warn!(%peer, error = %e, "cannot hand a connection to a worker"),
                },
                None => {
                    conn_tracker.spawn(async move {
                        serve_conn(stream, peer, conn, &builder, stop).await;
                    });
                }
            }
        }
        tracing::debug!(addr = %ctx.addr, "listener closed");
    });
    handle
}

/// Serve one client connection until it ends or `stop` asks it to finish.
async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<ConnCtx>,
    builder: &auto::Builder<TokioExecutor>,
    stop: CancellationToken,
) {
    let svc = service_fn(move |req| proxy::handle(conn.clone(), req));
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        _ = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        // Malformed requests and clients going away end here; hyper has
        // already answered 400 where it could.
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
