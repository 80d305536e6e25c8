//! Shared helpers: real loopback backends, a proxy in a temp dir, raw
//! keep-alive client connections, table builders and bounded polling.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hifi_proxy::{AdminAddr, AdminClient, ProxyOptions, ServiceSpec, SlotSpec, TableSpec};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Ports for the proxy's listeners: free, and below the range `bind(0)`
/// backends take theirs from.
pub use hifi_testkit::loopback_port;

/// Generous bound for anything awaited in a test (loaded 2-core machines).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Poll `cond` every 20 ms until it holds; panic after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Await `fut` for at most [`PATIENCE`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// `127.0.0.1:port`.
pub fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

// ---------------------------------------------------------------- backends

/// A response body fed through a channel (SSE in the test backend).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

struct BackendState {
    name: String,
    hits: AtomicU64,
    unhealthy: AtomicBool,
    release: watch::Sender<u64>,
    stop: CancellationToken,
}

/// A real HTTP/1.1 backend on a loopback port. Paths:
/// `/healthz`; `/slow?ms=N`; `/fail` (500); `/hang`; `/sse` (first event now, second after
/// [`Backend::release`]); `/ws` (upgrade, then raw echo); `/echo` (POST body
/// echo); anything else answers the backend's name. Every answer carries
/// `x-backend` and the request's interesting headers as `x-seen-*`.
pub struct Backend {
    pub addr: SocketAddr,
    state: Arc<BackendState>,
}

impl Backend {
    /// Start on a new port.
    pub async fn start(name: &str) -> Backend {
        Self::start_on(name, "127.0.0.1:0".parse().expect("addr")).await
    }

    /// Start on a given address (to bring a stopped backend back).
    pub async fn start_on(name: &str, addr: SocketAddr) -> Backend {
        let listener = bounded("bind backend", async {
            loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => return l,
                    // The previous incarnation's socket may linger briefly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await;
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(BackendState {
            name: name.to_owned(),
            hits: AtomicU64::new(0),
            unhealthy: AtomicBool::new(false),
            release: watch::channel(0).0,
            stop: CancellationToken::new(),
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = st.stop.cancelled() => return,
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let st2 = st.clone();
                    let svc = service_fn(move |req| backend_handle(st2.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        _ = st.stop.cancelled() => {}
                    }
                });
            }
        });
        Backend { addr, state }
    }

    /// `IP:PORT` as a string for tables.
    pub fn addr_str(&self) -> String {
        self.addr.to_string()
    }

    /// Requests served (health checks excluded).
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Let `/sse` streams send their last event.
    pub fn release(&self) {
        self.state.release.send_modify(|g| *g += 1);
    }

    /// Make `/healthz` answer 503 (or 200 again).
    pub fn set_unhealthy(&self, v: bool) {
        self.state.unhealthy.store(v, Ordering::SeqCst);
    }

    /// Close the listener and every connection.
    pub fn stop(&self) {
        self.state.stop.cancel();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.state.stop.cancel();
    }
}

type RespBody = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> RespBody {
    Full::new(s.into()).boxed()
}

async fn backend_handle(
    st: Arc<BackendState>,
    mut req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let path = req.uri().path().to_owned();
    if path != "/healthz" {
        st.hits.fetch_add(1, Ordering::SeqCst);
    }
    let seen = |name: &str| {
        req.headers()
            .get(name)
            .cloned()
            .unwrap_or_else(|| header::HeaderValue::from_static("-"))
    };
    let mut echo = HeaderMap::new();
    for (from, to) in [
        ("x-hifi-slot", "x-seen-slot"),
        ("x-forwarded-for", "x-seen-xff"),
        ("x-forwarded-proto", "x-seen-xfp"),
        ("x-forwarded-host", "x-seen-xfh"),
        ("x-hifi-preview-token", "x-seen-preview"),
        ("x-secret", "x-seen-secret"),
        ("host", "x-seen-host"),
    ] {
        echo.insert(to, seen(from));
    }
    echo.insert(
        "x-backend",
        header::HeaderValue::from_str(&st.name).expect("name"),
    );
    let mut resp = match path.as_str() {
        "/healthz" => {
            if st.unhealthy.load(Ordering::SeqCst) {
                let mut r = Response::new(full("sick"));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r
            } else {
                Response::new(full("ok"))
            }
        }
        "/slow" => {
            let ms: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full(st.name.clone()))
        }
        "/fail" => {
            let mut r = Response::new(full("failed"));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(full("late"))
        }
        "/sse" => {
            let (tx, rx) = mpsc::channel(4);
            let st2 = st.clone();
            // Streams opened before a release end at it; later ones wait for the next.
            let mut released = st.release.subscribe();
            released.mark_unchanged();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from("data: first\n\n")).await;
                tokio::select! {
                    _ = released.changed() => {
                        let _ = tx.send(Bytes::from("data: last\n\n")).await;
                    }
                    _ = st2.stop.cancelled() => {}
                    // Keeps the stream open when nobody releases it.
                    _ = tokio::time::sleep(Duration::from_secs(120)) => {}
                }
            });
            let mut r = Response::new(ChannelBody(rx).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/event-stream"),
            );
            r
        }
        "/ws" => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            let st2 = st.clone();
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                loop {
                    tokio::select! {
                        _ = st2.stop.cancelled() => return,
                        r = io.read(&mut buf) => match r {
                            Ok(0) | Err(_) => return,
                            Ok(n) => if io.write_all(&buf[..n]).await.is_err() { return },
                        },
                    }
                }
            });
            let mut r = Response::new(full(""));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut().insert(
                header::UPGRADE,
                header::HeaderValue::from_static("websocket"),
            );
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("Upgrade"),
            );
            r
        }
        "/echo" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Response::new(full(body))
        }
        _ => Response::new(full(st.name.clone())),
    };
    resp.headers_mut().extend(echo);
    Ok(resp)
}

/// A backend speaking raw HTTP/1.1 that answers the first request of each
/// connection (unless `answer_first` is false) and closes the connection when
/// the next request arrives, as a backend does when its keep-alive timeout
/// fires just as a request is sent. Returns its address and a count of the
/// connections it accepted.
pub async fn closing_backend(answer_first: bool) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(AtomicU64::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                // Read until the end of the first request's headers.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                if !answer_first {
                    return;
                }
                let body = "fresh";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-backend: closing\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
                // Wait for the next request, then close without answering.
                let _ = s.read(&mut buf).await;
            });
        }
    });
    (addr, conns)
}

// ------------------------------------------------------------------- proxy

/// A proxy serving from a temporary state directory.
pub struct TestProxy {
    pub dir: Arc<tempfile::TempDir>,
    pub admin: AdminClient,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<hifi_proxy::Result<()>>>,
}

/// Options for tests: fast health checks, short timeouts where asserted.
pub fn test_options(dir: &std::path::Path) -> ProxyOptions {
    let mut o = ProxyOptions::new(dir.join("state"), AdminAddr::unix(dir.join("proxy.sock")));
    o.health_interval = Duration::from_millis(100);
    o.health_timeout = Duration::from_millis(1000);
    o.unhealthy_threshold = 2;
    o.shutdown_grace = Duration::from_secs(2);
    o
}

impl TestProxy {
    /// Start with test options in a new temporary directory.
    pub async fn start() -> TestProxy {
        Self::start_with(|_| {}).await
    }

    /// Start with adjusted options.
    pub async fn start_with(adjust: impl FnOnce(&mut ProxyOptions)) -> TestProxy {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, adjust).await
    }

    /// Start in an existing directory (a restart).
    pub async fn start_in(
        dir: Arc<tempfile::TempDir>,
        adjust: impl FnOnce(&mut ProxyOptions),
    ) -> TestProxy {
        let mut opts = test_options(dir.path());
        adjust(&mut opts);
        let admin = AdminClient::new(opts.admin.path());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(hifi_proxy::serve(opts, async {
            let _ = rx.await;
        }));
        let p = TestProxy {
            dir,
            admin,
            shutdown: Some(tx),
            task: Some(task),
        };
        let admin = p.admin.clone();
        eventually("proxy admin socket", || {
            let admin = admin.clone();
            async move { admin.tables().await.is_ok() }
        })
        .await;
        p
    }

    /// The live table of `env`, which must exist.
    pub async fn table(&self, env: &str) -> TableSpec {
        self.admin
            .get_table(env)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("no table for {env}"))
    }

    /// Put a table, panicking with the proxy's message if refused.
    pub async fn put(&self, t: &TableSpec) {
        if let Err(e) = self.admin.put_table(t).await {
            panic!("table refused: {e}");
        }
    }

    /// Shut down and wait for `serve` to return.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            bounded("proxy shutdown", task)
                .await
                .expect("serve task")
                .expect("serve result");
        }
        self.dir.clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ------------------------------------------------------------------ tables

/// A slot over backends.
pub fn slot(name: &str, backends: &[&Backend]) -> SlotSpec {
    SlotSpec {
        slot: name.to_owned(),
        backends: backends.iter().map(|b| b.addr_str()).collect(),
        protocol: None,
    }
}

/// A service with an active slot only.
pub fn service(name: &str, route: &str, internal_port: u16, active: SlotSpec) -> ServiceSpec {
    ServiceSpec {
        name: name.to_owned(),
        route: route.to_owned(),
        host: None,
        internal_listen: local(internal_port),
        health: "/healthz".to_owned(),
        active,
        candidate: None,
        standby: None,
        protocol: Default::default(),
        request_timeout_ms: None,
    }
}

/// A candidate slot.
pub fn candidate(
    name: &str,
    backends: &[&Backend],
    weight: f64,
) -> Option<hifi_proxy::CandidateSpec> {
    Some(hifi_proxy::CandidateSpec {
        slot: name.to_owned(),
        backends: backends.iter().map(|b| b.addr_str()).collect(),
        weight,
        protocol: None,
    })
}

/// A table.
pub fn table(env: &str, port: u16, services: Vec<ServiceSpec>) -> TableSpec {
    TableSpec {
        env: env.to_owned(),
        listen: local(port),
        user_key: "cookie:hifi-user".to_owned(),
        preview_token: None,
        preview_listen: None,
        services,
    }
}

// ------------------------------------------------------------------ client

/// A response, body collected.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// A header as a string ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Which backend answered.
    pub fn backend(&self) -> &str {
        self.header("x-backend")
    }
}

/// A request builder with a Host header.
pub fn req(method: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "shop.test")
}

/// One HTTP/1.1 keep-alive connection to the proxy.
pub struct Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connect to `127.0.0.1:port`.
    pub async fn open(port: u16) -> Conn {
        let stream = bounded("connect", TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect to proxy");
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Conn { send }
    }

    /// Send a request and collect the answer.
    pub async fn send(&mut self, r: Request<Full<Bytes>>) -> Result<Resp, hyper::Error> {
        self.send.ready().await?;
        let resp = self.send.send_request(r).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// GET with extra headers, panicking on transport errors.
    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = req("GET", path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let r = b.body(Full::new(Bytes::new())).expect("request");
        bounded(&format!("GET {path}"), self.send(r))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET.
    pub async fn get(&mut self, path: &str) -> Resp {
        self.get_with(path, &[]).await
    }

    /// Send a request and return the streaming response.
    pub async fn stream(&mut self, r: Request<Full<Bytes>>) -> Response<Incoming> {
        bounded("send", async {
            self.send.ready().await.expect("ready");
            self.send.send_request(r).await.expect("response")
        })
        .await
    }
}

/// GET on a fresh connection.
pub async fn get(port: u16, path: &str) -> Resp {
    Conn::open(port).await.get(path).await
}

/// GET on a fresh connection with headers.
pub async fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    Conn::open(port).await.get_with(path, headers).await
}

/// One h2c (prior knowledge) request.
pub async fn get_h2(port: u16, path: &str) -> Resp {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let r = Request::builder()
        .uri(format!("http://shop.test:{port}{path}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = bounded("h2 request", send.send_request(r))
        .await
        .expect("h2 response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A proxy serving environment `prod` on the returned port: every path goes
/// to service `catalog`, whose blue slot is one backend.
pub async fn one_backend() -> (TestProxy, Backend, u16) {
    one_backend_with(|_| {}).await
}

/// [`one_backend`] with the proxy's options adjusted first.
pub async fn one_backend_with(
    adjust: impl FnOnce(&mut hifi_proxy::ProxyOptions),
) -> (TestProxy, Backend, u16) {
    let proxy = TestProxy::start_with(adjust).await;
    let blue = Backend::start("blue").await;
    let port = loopback_port();
    proxy
        .put(&table(
            "prod",
            port,
            vec![service(
                "catalog",
                "/",
                loopback_port(),
                slot("blue", &[&blue]),
            )],
        ))
        .await;
    (proxy, blue, port)
}
