//! Switch benchmark for `bench/proxy/run.sh`: keep-alive clients hammer a
//! proxy while the active slot flips between two backends (bodies "blue" and
//! "green"); for each switch it measures how long until the keep-alive
//! clients see the new slot, and it counts failed requests.
//!
//! `bench-switch --mode hifi|nginx|haproxy --target IP:PORT [--switches N]
//!   [--clients N] [--admin SOCK --env E --table-blue F --table-green F]
//!   [--nginx-conf F --nginx-upstream F --blue IP:PORT --green IP:PORT]
//!   [--haproxy-sock SOCK]`

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
struct Args {
    mode: String,
    target: String,
    switches: usize,
    clients: usize,
    admin: PathBuf,
    env: String,
    table_blue: PathBuf,
    table_green: PathBuf,
    nginx_conf: PathBuf,
    nginx_upstream: PathBuf,
    blue: String,
    green: String,
    haproxy_sock: PathBuf,
}

fn parse() -> Result<Args, BoxError> {
    let mut a = Args {
        switches: 100,
        clients: 4,
        env: "bench".into(),
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--mode" => a.mode = v,
            "--target" => a.target = v,
            "--switches" => a.switches = v.parse()?,
            "--clients" => a.clients = v.parse()?,
            "--admin" => a.admin = v.into(),
            "--env" => a.env = v,
            "--table-blue" => a.table_blue = v.into(),
            "--table-green" => a.table_green = v.into(),
            "--nginx-conf" => a.nginx_conf = v.into(),
            "--nginx-upstream" => a.nginx_upstream = v.into(),
            "--blue" => a.blue = v,
            "--green" => a.green = v,
            "--haproxy-sock" => a.haproxy_sock = v.into(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

struct Shared {
    /// 0 = blue, 1 = green: the slot the current switch goes to.
    expected: AtomicUsize,
    /// Switch number; clients record the first time they see `expected` in it.
    generation: AtomicU64,
    seen: Mutex<Vec<(u64, usize, Instant)>>,
    ok: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
    stop: AtomicBool,
}

async fn client(id: usize, target: String, shared: Arc<Shared>) {
    let mut last_gen = u64::MAX;
    // Bounded: at most 50 million requests, or until told to stop.
    let mut budget = 50_000_000u64;
    'connect: while !shared.stop.load(SeqCst) && budget > 0 {
        let Ok(stream) = tokio::net::TcpStream::connect(&target).await else {
            shared.failed.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
        else {
            continue;
        };
        tokio::spawn(conn);
        while !shared.stop.load(SeqCst) && budget > 0 {
            budget -= 1;
            if send.ready().await.is_err() {
                // Closed between requests (no request lost): reconnect.
                shared.reconnects.fetch_add(1, SeqCst);
                continue 'connect;
            }
            let req = hyper::Request::get("/")
                .header("host", "bench")
                .body(Empty::new())
                .expect("request");
            let resp = match send.send_request(req).await {
                Ok(r) => r,
                Err(_) => {
                    shared.failed.fetch_add(1, SeqCst);
                    continue 'connect;
                }
            };
            let status = resp.status();
            let body = match resp.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    shared.failed.fetch_add(1, SeqCst);
                    continue 'connect;
                }
            };
            if !status.is_success() {
                shared.failed.fetch_add(1, SeqCst);
                continue;
            }
            shared.ok.fetch_add(1, SeqCst);
            let slot = usize::from(body.starts_with(b"green"));
            let generation = shared.generation.load(SeqCst);
            if generation != last_gen && slot == shared.expected.load(SeqCst) {
                last_gen = generation;
                shared
                    .seen
                    .lock()
                    .expect("lock")
                    .push((generation, id, Instant::now()));
            }
        }
    }
}

async fn switch(a: &Args, to_green: bool) -> Result<(), BoxError> {
    match a.mode.as_str() {
        "hifi" => {
            let file = if to_green {
                &a.table_green
            } else {
                &a.table_blue
            };
            let json = std::fs::read(file)?;
            hifi_proxy::AdminClient::new(&a.admin)
                .put_table_json(&a.env, json)
                .await?;
        }
        "nginx" => {
            let server = if to_green { &a.green } else { &a.blue };
            std::fs::write(
                &a.nginx_upstream,
                format!("upstream app {{ server {server}; keepalive 64; }}\n"),
            )?;
            let st = Command::new("nginx")
                .arg("-c")
                .arg(&a.nginx_conf)
                .args(["-s", "reload"])
                .stderr(std::process::Stdio::null())
                .status()?;
            if !st.success() {
                return Err("nginx -s reload failed".into());
            }
        }
        "haproxy" => {
            let (on, off) = if to_green {
                ("green", "blue")
            } else {
                ("blue", "green")
            };
            let mut s = tokio::net::UnixStream::connect(&a.haproxy_sock).await?;
            s.write_all(
                format!("set server be/{on} state ready;set server be/{off} state maint\n")
                    .as_bytes(),
            )
            .await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            if !out.trim().is_empty() {
                return Err(format!("haproxy said: {out}").into());
            }
        }
        m => return Err(format!("unknown mode {m}").into()),
    }
    Ok(())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), BoxError> {
    let a = parse()?;
    let shared = Arc::new(Shared {
        expected: AtomicUsize::new(0),
        generation: AtomicU64::new(0),
        seen: Mutex::new(Vec::new()),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    // Start on blue.
    switch(&a, false).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tasks = Vec::new();
    for id in 0..a.clients {
        tasks.push(tokio::spawn(client(id, a.target.clone(), shared.clone())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut first, mut all, mut command) = (Vec::new(), Vec::new(), Vec::new());
    let mut timeouts = 0;
    for k in 1..=a.switches as u64 {
        let to_green = k % 2 == 1;
        shared.expected.store(usize::from(to_green), SeqCst);
        shared.generation.store(k, SeqCst);
        let t0 = Instant::now();
        switch(&a, to_green).await?;
        command.push(t0.elapsed().as_secs_f64() * 1e3);
        let deadline = t0 + Duration::from_secs(10);
        loop {
            let times: Vec<Instant> = shared
                .seen
                .lock()
                .expect("lock")
                .iter()
                .filter(|(g, _, _)| *g == k)
                .map(|(_, _, t)| *t)
                .collect();
            if times.len() >= a.clients {
                let ms = |t: &Instant| t.duration_since(t0).as_secs_f64() * 1e3;
                first.push(times.iter().map(ms).fold(f64::MAX, f64::min));
                all.push(times.iter().map(ms).fold(0.0, f64::max));
                break;
            }
            if Instant::now() > deadline {
                timeouts += 1;
                break;
            }
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    shared.stop.store(true, SeqCst);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    println!(
        "mode={} switches={} clients={} command_ms_p50={:.3} visible_first_ms_p50={:.3} visible_first_ms_max={:.3} visible_all_ms_p50={:.3} visible_all_ms_max={:.3} failed={} reconnects={} ok={} timeouts={}",
        a.mode,
        a.switches,
        a.clients,
        pct(&mut command, 0.5),
        pct(&mut first, 0.5),
        pct(&mut first, 1.0),
        pct(&mut all, 0.5),
        pct(&mut all, 1.0),
        shared.failed.load(SeqCst),
        shared.reconnects.load(SeqCst),
        shared.ok.load(SeqCst),
        timeouts
    );
    Ok(())
}
