//! HTTP from the users' side: one request ([`get`]) and a load generator
//! ([`Load`]) of sticky users on keep-alive HTTP/1.1 connections, which
//! records every answer (status, version, slot) and every failure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The `x-hifi-slot` response header.
    pub slot_header: Option<String>,
    pub body: String,
    /// Whether the server keeps the connection open.
    keep_alive: bool,
}

impl Reply {
    fn field(&self, name: &str) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        json[name].as_str().map(str::to_string)
    }

    /// The version the service reports in its body.
    pub fn version(&self) -> Option<String> {
        self.field("version")
    }

    /// The slot the service reports in its body (its `HIFI_SLOT`).
    pub fn slot(&self) -> Option<String> {
        self.field("slot")
    }
}

fn connect(port: u16) -> std::io::Result<BufReader<TcpStream>> {
    let stream =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    Ok(BufReader::new(stream))
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Sends one GET on `conn` and reads the answer (Content-Length or chunked).
fn exchange(
    conn: &mut BufReader<TcpStream>,
    port: u16,
    path: &str,
    user: Option<&str>,
    close: bool,
) -> std::io::Result<Reply> {
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
    if let Some(user) = user {
        request.push_str(&format!("cookie: hifi-user={user}\r\n"));
    }
    if close {
        request.push_str("connection: close\r\n");
    }
    request.push_str("\r\n");
    conn.get_mut().write_all(request.as_bytes())?;

    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before the answer",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = !close;
    let mut slot_header = None;
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed in the headers".into()));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid(format!("bad header {header:?}")));
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep_alive &= !value.eq_ignore_ascii_case("close"),
            "x-hifi-slot" => slot_header = Some(value.to_string()),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        conn.read_exact(&mut body)?;
    } else {
        conn.read_to_end(&mut body)?;
        keep_alive = false;
    }
    Ok(Reply {
        status,
        slot_header,
        body: String::from_utf8_lossy(&body).into_owned(),
        keep_alive,
    })
}

/// One GET to 127.0.0.1:`port` on a fresh connection, as `user`.
pub fn get(port: u16, path: &str, user: Option<&str>) -> Result<Reply, String> {
    let mut conn = connect(port).map_err(|e| format!("connect to {port}: {e}"))?;
    exchange(&mut conn, port, path, user, true).map_err(|e| format!("GET {path} on {port}: {e}"))
}

/// One request of the load.
#[derive(Debug, Clone)]
pub struct Sample {
    pub user: String,
    /// When it was sent.
    pub sent: Instant,
    /// The answer, or why there was none.
    pub reply: Result<Reply, String>,
}

impl Sample {
    /// A 200 from the service.
    pub fn ok(&self) -> bool {
        self.reply.as_ref().is_ok_and(|r| r.status == 200)
    }

    /// The version that answered, for a 200.
    pub fn version(&self) -> Option<String> {
        self.reply
            .as_ref()
            .ok()
            .filter(|r| r.status == 200)
            .and_then(Reply::version)
    }

    fn describe(&self) -> String {
        match &self.reply {
            Ok(r) => format!("{} {}: {}", self.user, r.status, r.body.trim()),
            Err(e) => format!("{}: {e}", self.user),
        }
    }
}

/// Users sending GETs on keep-alive connections until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Sample>>>,
}

/// How long a load runs at most if nobody stops it.
const MAX_LOAD: Duration = Duration::from_secs(150);

impl Load {
    /// Starts `users` users (`user-0`…) spread over `threads` threads, each
    /// thread on one keep-alive connection to `port`, sending GET /version
    /// with `cookie: hifi-user=<user>`, users in turn, a few ms apart.
    pub fn start(port: u16, users: usize, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|t| {
                let stop = stop.clone();
                let mine: Vec<String> = (t..users)
                    .step_by(threads)
                    .map(|u| format!("user-{u}"))
                    .collect();
                std::thread::spawn(move || run_user_loop(port, &mine, &stop))
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the users and returns what they saw.
    pub fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples: Vec<Sample> = self
            .threads
            .drain(..)
            .flat_map(|t| t.join().expect("a load thread panicked"))
            .collect();
        samples.sort_by_key(|s| s.sent);
        Tally { samples }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn run_user_loop(port: u16, users: &[String], stop: &AtomicBool) -> Vec<Sample> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut conn: Option<BufReader<TcpStream>> = None;
    'run: loop {
        for user in users {
            if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_LOAD {
                break 'run;
            }
            let sent = Instant::now();
            let reply = send(&mut conn, port, user).map_err(|e| e.to_string());
            match &reply {
                Ok(r) if r.keep_alive => {}
                Ok(_) => conn = None,
                Err(_) => {
                    conn = None;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            samples.push(Sample {
                user: user.clone(),
                sent,
                reply,
            });
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    samples
}

fn send(conn: &mut Option<BufReader<TcpStream>>, port: u16, user: &str) -> std::io::Result<Reply> {
    if conn.is_none() {
        *conn = Some(connect(port)?);
    }
    let c = conn.as_mut().expect("connected just above");
    exchange(c, port, "/version", Some(user), false)
}

/// Everything a load saw, in the order it was sent.
pub struct Tally {
    pub samples: Vec<Sample>,
}

impl Tally {
    /// Requests that got no 200.
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| !s.ok()).collect()
    }

    /// Requests sent at or after `t`.
    pub fn since(&self, t: Instant) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.sent >= t)
    }

    /// Each user's requests in the order they were sent.
    pub fn by_user(&self) -> BTreeMap<&str, Vec<&Sample>> {
        let mut users: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
        for s in &self.samples {
            users.entry(&s.user).or_default().push(s);
        }
        users
    }

    /// How many 200s each version served.
    pub fn versions(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for v in self.samples.iter().filter_map(Sample::version) {
            *counts.entry(v).or_default() += 1;
        }
        counts
    }

    /// Counts and the first failures, for assertion messages.
    pub fn summary(&self) -> String {
        let failures = self.failures();
        let first: Vec<String> = failures.iter().take(5).map(|s| s.describe()).collect();
        format!(
            "{} requests, versions {:?}, {} failed; first failures: {first:?}",
            self.samples.len(),
            self.versions(),
            failures.len()
        )
    }

    /// Asserts the load saw enough requests and no failure at all.
    #[track_caller]
    pub fn assert_no_failures(&self) {
        assert!(
            self.samples.len() > 50,
            "too little load: {}",
            self.summary()
        );
        assert!(
            self.failures().is_empty(),
            "failed requests: {}",
            self.summary()
        );
    }
}
