//! Public and internal listeners: accept loops and client connections.
//!
//! Clients speak HTTP/1.1 (the `h1` path) or h2c (handed to hyper by `h1`).
//! Each listener serves at most `max_connections_per_listener` connections
//! at once: beyond it, it stops accepting until one closes. A listener
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

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::h1;
use crate::proxy::{ConnCtx, ListenerCtx};

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
        let slots = Arc::new(Semaphore::new(ctx.shared.max_connections));
        loop {
            // At the cap, stop accepting until a connection closes.
            let permit = tokio::select! {
                _ = stop.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
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
            let stop = stop.clone();
            match ctx.shared.workers.pick() {
                // Hand the socket to a worker: it is registered with that
                // worker's reactor and served there for its whole life.
                Some(worker) => match stream.into_std() {
                    Ok(std) => {
                        worker.spawn(conn_tracker.track_future(async move {
                            match TcpStream::from_std(std) {
                                Ok(stream) => {
                                    let _permit = permit;
                                    h1::conn::serve(stream, conn, stop).await;
                                }
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
                        let _permit = permit;
                        h1::conn::serve(stream, conn, stop).await;
                    });
                }
            }
        }
        tracing::debug!(addr = %ctx.addr, "listener closed");
    });
    handle
}
