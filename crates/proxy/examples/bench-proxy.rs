//! Runs the proxy standalone for the benchmark in `bench/proxy/`:
//! `bench-proxy --state-dir DIR --admin SOCK [--workers N] [--threads T]`:
//! N (default 1) proxy worker threads serving client connections; accepting,
//! admin and health checks run on a tokio runtime of T (default 1) threads,
//! which also serves the connections when N is 0.
//! Stops on SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use hifi_proxy::{AdminAddr, ProxyOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut state_dir = PathBuf::from("bench-state");
    let mut admin = PathBuf::from("bench-proxy.sock");
    let mut workers = 1usize;
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--state-dir" => state_dir = value()?.into(),
            "--admin" => admin = value()?.into(),
            "--workers" => workers = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let mut opts = ProxyOptions::new(state_dir, AdminAddr::unix(admin));
    opts.shutdown_grace = Duration::from_secs(1);
    opts.workers = workers;
    runtime.block_on(hifi_proxy::serve(opts, async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }))?;
    Ok(())
}
