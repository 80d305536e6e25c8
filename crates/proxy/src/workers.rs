//! Threads that serve client connections, one current-thread tokio runtime
//! each.
//!
//! A client connection is handed to one worker when it is accepted and stays
//! there: its requests, the backend connections they use (each worker has its
//! own shard of every backend pool) and the tasks driving those connections
//! all run on that worker's thread. A request thus never crosses threads and
//! the hand-off between the client's task and a backend connection's task is
//! a wake-up on the same thread, not a futex wake-up of another worker.
//! Accepting, the admin socket and health checks stay on the caller's
//! runtime.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// 1-based index of the worker running on this thread; 0 elsewhere.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Shard numbers given to threads that are not workers (the caller's
/// runtime, when connections are served there), after the workers' own.
static NEXT_OTHER: AtomicUsize = AtomicUsize::new(1 << 16);

/// The pool shard of the current thread (callers take it modulo their shard
/// count): its worker's index + 1, or a number of its own for other threads,
/// so that on a multi-threaded caller runtime each thread also tends to
/// reuse the connections it drives.
pub(crate) fn current_shard() -> usize {
    WORKER.with(|w| match w.get() {
        0 => {
            let n = NEXT_OTHER.fetch_add(1, Relaxed);
            w.set(n);
            n
        }
        n => n,
    })
}

/// The worker threads; empty when connections are served on the caller's
/// runtime.
#[derive(Debug)]
pub(crate) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    threads: Mutex<Vec<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Workers {
    /// Start `n` workers (none for 0).
    pub(crate) fn start(n: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("hifi-proxy-{i}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(i + 1));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                    // Dropping the runtime drops what is still running on
                    // it (connections past the shutdown grace).
                    drop(rt);
                })?;
            threads.push((stop, thread));
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            threads: Mutex::new(threads),
        })
    }

    /// Number of pool shards: one per worker and one for the caller's
    /// runtime, or one per CPU when the caller's runtime serves connections.
    pub(crate) fn shards(&self) -> usize {
        if self.handles.is_empty() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.handles.len() + 1
        }
    }

    /// The runtime for the next client connection (round robin), or `None`
    /// to serve it on the caller's runtime.
    pub(crate) fn pick(&self) -> Option<&Handle> {
        if self.handles.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Relaxed) % self.handles.len();
        Some(&self.handles[i])
    }

    /// Stop every worker and wait for its thread to end.
    pub(crate) async fn shutdown(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        if threads.is_empty() {
            return;
        }
        let joins: Vec<_> = threads
            .into_iter()
            .map(|(stop, thread)| {
                let _ = stop.send(());
                thread
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for t in joins {
                let _ = t.join();
            }
        })
        .await;
    }
}
