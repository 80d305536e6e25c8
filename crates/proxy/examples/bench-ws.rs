//! WebSocket echo throughput for the benchmark in `bench/proxy/`:
//!
//! - `bench-ws server --listen IP:PORT`: a WebSocket echo server (it also
//!   answers `GET /healthz` with 200, for the proxy's health checks);
//! - `bench-ws client --target IP:PORT [--conns N] [--secs S] [--size B]`:
//!   N connections (default 16) each send a B-byte (default 128) binary
//!   message and wait for its echo, for S seconds (default 5); prints
//!   `msgs_per_sec=… errors=…`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("server or client")?;
    let (mut listen, mut target) = (String::new(), String::new());
    let (mut conns, mut secs, mut size) = (16usize, 5u64, 128usize);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = value()?,
            "--target" => target = value()?,
            "--conns" => conns = value()?.parse()?,
            "--secs" => secs = value()?.parse()?,
            "--size" => size = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match mode.as_str() {
        "server" => rt.block_on(server(listen)),
        "client" => rt.block_on(client(target, conns, Duration::from_secs(secs), size)),
        other => Err(format!("unknown mode {other}").into()),
    }
}

async fn server(listen: String) -> Res<()> {
    let listener = TcpListener::bind(&listen).await?;
    loop {
        let (mut s, _) = listener.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut peek = [0u8; 16];
            if let Ok(n) = s.peek(&mut peek).await
                && peek[..n].starts_with(b"GET /healthz")
            {
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                return;
            }
            let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn client(target: String, conns: usize, dur: Duration, size: usize) -> Res<()> {
    let msgs = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (target, msgs, errors) = (target.clone(), msgs.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let run = async {
                let s = TcpStream::connect(&target).await?;
                s.set_nodelay(true)?;
                let (mut ws, _) =
                    tokio_tungstenite::client_async(format!("ws://{target}/ws"), s).await?;
                let payload = vec![7u8; size];
                while start.elapsed() < dur {
                    ws.send(Message::binary(payload.clone())).await?;
                    match ws.next().await {
                        Some(Ok(m)) if m.len() == size => {
                            msgs.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return Err("echo missing".into()),
                    }
                }
                let _ = ws.close(None).await;
                Ok::<_, Box<dyn std::error::Error>>(())
            };
            if run.await.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "msgs_per_sec={:.0} errors={}",
        msgs.load(Ordering::Relaxed) as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
