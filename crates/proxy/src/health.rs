//! Active health checks of every backend in every table.
//!
//! Each backend is probed with `GET <health path>` every `health_interval`;
//! after `unhealthy_threshold` consecutive failures (non-2xx, refused, or no
//! answer within `health_timeout`) it leaves rotation, and the first success
//! brings it back. A backend that appears in a table for the first time is
//! considered healthy: the control plane only adds backends it has already
//! health-checked itself (PRIOR-ART pitfall 6), and starting them unhealthy
//! would make every switch wait one probe interval for no benefit. Health is
//! a property of the process, so it is keyed by (address, health path) and
//! survives table updates.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::unix_now;
use hifi_core::protocol::{GRPC_PROBE_MESSAGE, grpc_probe_passes};

use crate::table::Protocol;

/// Health of one backend process.
#[derive(Debug)]
pub(crate) struct BackendHealth {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    /// How it is probed: HTTP/1.1 `GET` (2xx passes); for h2c, an HTTP/2
    /// `GET` (any answer below 500 passes); for gRPC, an HTTP/2 gRPC call
    /// with an empty message (`grpc-status` 0 passes, and so does 12,
    /// UNIMPLEMENTED: the server is up but has no such method), judged by
    /// [`grpc_probe_passes`], the rule hifi's runtimes apply too.
    pub(crate) protocol: Protocol,
    healthy: AtomicBool,
    failures: AtomicU32,
    last_check_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl BackendHealth {
    fn new(addr: SocketAddr, path: &str, protocol: Protocol) -> Self {
        BackendHealth {
            addr,
            path: path.to_owned(),
            protocol,
            healthy: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            last_check_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// In rotation?
    #[inline]
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    fn record(&self, outcome: Result<(), String>, threshold: u32) {
        self.last_check_ms
            .store(unix_now().as_millis() as u64, Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(()) => {
                self.failures.store(0, Relaxed);
                if !self.healthy.swap(true, Relaxed) {
                    tracing::info!(backend = %self.addr, "backend healthy again, back in rotation");
                }
                *last = None;
            }
            Err(e) => {
                let n = self.failures.fetch_add(1, Relaxed).saturating_add(1);
                if n >= threshold && self.healthy.swap(false, Relaxed) {
                    tracing::warn!(backend = %self.addr, error = %e, failures = n, "backend unhealthy, out of rotation");
                }
                *last = Some(e);
            }
        }
    }

    /// Report for the admin interface.
    pub(crate) fn report(&self, service: &str, slot: &str, role: &str) -> BackendReport {
        BackendReport {
            service: service.to_owned(),
            slot: slot.to_owned(),
            role: role.to_owned(),
            backend: self.addr.to_string(),
            health_path: self.path.clone(),
            healthy: self.is_healthy(),
            consecutive_failures: self.failures.load(Relaxed),
            last_check_ms: match self.last_check_ms.load(Relaxed) {
                0 => None,
                ms => Some(ms),
            },
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// One backend's health as shown by `GET /health?env=E`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendReport {
    /// Service name.
    pub service: String,
    /// Slot name.
    pub slot: String,
    /// `active`, `candidate` or `standby`.
    pub role: String,
    /// Backend address.
    pub backend: String,
    /// Probed path.
    pub health_path: String,
    /// In rotation.
    pub healthy: bool,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Unix ms of the last probe, if any yet.
    pub last_check_ms: Option<u64>,
    /// Why the last probe failed, if it did.
    pub last_error: Option<String>,
}

type HealthKey = (SocketAddr, String, Protocol);

/// All backends being probed.
#[derive(Debug, Default)]
pub(crate) struct HealthRegistry {
    backends: Mutex<HashMap<HealthKey, Arc<BackendHealth>>>,
}

impl HealthRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<HealthKey, Arc<BackendHealth>>> {
        self.backends.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The health record of a backend, created (healthy) on first use.
    pub(crate) fn get_or_create(
        &self,
        addr: SocketAddr,
        path: &str,
        protocol: Protocol,
    ) -> Arc<BackendHealth> {
        self.lock()
            .entry((addr, path.to_owned(), protocol))
            .or_insert_with(|| Arc::new(BackendHealth::new(addr, path, protocol)))
            .clone()
    }

    /// Stop probing backends that no table references any more.
    pub(crate) fn prune(&self) {
        // The registry's own Arc is the only one left when no table holds it.
        self.lock().retain(|_, b| Arc::strong_count(b) > 1);
    }

    fn snapshot(&self) -> Vec<Arc<BackendHealth>> {
        self.lock().values().cloned().collect()
    }
}

/// Settings of the checker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthConfig {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) unhealthy_threshold: u32,
}

/// Probe every registered backend each interval until `stop` is cancelled.
pub(crate) async fn run_checker(
    registry: Arc<HealthRegistry>,
    config: HealthConfig,
    stop: CancellationToken,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.timeout));
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        // Shorter than any sane backend keep-alive, so a probe never races a
        // backend closing its idle connection (which would be a false failure).
        .pool_idle_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(1)
        .build(connector.clone());
    let h2_client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .http2_only(true)
        .build(connector);
    let mut ticker = tokio::time::interval(config.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut probes = JoinSet::new();
        for backend in registry.snapshot() {
            let client = if backend.protocol != Protocol::Http1 {
                h2_client.clone()
            } else {
                client.clone()
            };
            probes.spawn(async move {
                let outcome = probe(&client, &backend, config.timeout).await;
                backend.record(outcome, config.unhealthy_threshold);
            });
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = async { while probes.join_next().await.is_some() {} } => {}
        }
    }
}

async fn probe(
    client: &Client<HttpConnector, Full<Bytes>>,
    backend: &BackendHealth,
    timeout: Duration,
) -> Result<(), String> {
    let uri: Uri = format!("http://{}{}", backend.addr, backend.path)
        .parse()
        .map_err(|e| format!("bad health URI: {e}"))?;
    let grpc = backend.protocol == Protocol::Grpc;
    let mut req = if grpc {
        // A gRPC call with an empty message (5-byte frame header only).
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
    } else {
        Request::get(uri)
    };
    req = req.header(header::USER_AGENT, "hifi-proxy-health");
    let body = if grpc {
        Full::new(Bytes::from_static(&GRPC_PROBE_MESSAGE))
    } else {
        Full::new(Bytes::new())
    };
    let req = req
        .body(body)
        .map_err(|e| format!("bad health request: {e}"))?;
    let (answer, grpc_status) = tokio::time::timeout(timeout, async {
        let resp = client.request(req).await.map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{e}{cause}")
        })?;
        let status = resp.status();
        let mut grpc_status = resp.headers().get("grpc-status").cloned();
        // Read the body so the connection can be reused for the next probe
        // (and, for gRPC, to see the trailers).
        if let Ok(collected) = resp.into_body().collect().await
            && let Some(t) = collected.trailers()
            && let Some(g) = t.get("grpc-status")
        {
            grpc_status = Some(g.clone());
        }
        Ok::<_, String>((status, grpc_status))
    })
    .await
    .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))??;
    let passed = match backend.protocol {
        Protocol::Http1 => answer.is_success(),
        Protocol::H2c => answer.as_u16() < 500,
        Protocol::Grpc => {
            grpc_probe_passes(answer.as_u16(), grpc_status.as_ref().map(|g| g.as_bytes()))
        }
    };
    if passed {
        Ok(())
    } else {
        Err(match grpc_status {
            Some(g) if grpc => format!("answered {answer} with grpc-status {g:?}"),
            _ => format!("answered {answer}"),
        })
    }
}
