//! The demo's users: a load generator that plays `users` people, each with
//! its own `hifi-user` cookie (so the canary's sticky assignment applies to
//! them as to real users), sending requests over keep-alive connections
//! until stopped. It counts what it really got back, by the slot that
//! served each answer, so the demo's claims ("12,408 requests during the
//! switch, 0 failed") are measurements, not narration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What the users saw, in total and by slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with another status, or no answer at all.
    pub failed: u64,
    /// (ok, failed) by the slot that answered (`?` when none did).
    pub by_slot: BTreeMap<String, (u64, u64)>,
}

impl Tally {
    /// Every request sent.
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Tally) -> Tally {
        let by_slot = self
            .by_slot
            .iter()
            .map(|(slot, (ok, failed))| {
                let (ok0, failed0) = earlier.by_slot.get(slot).copied().unwrap_or_default();
                (slot.clone(), (ok - ok0, failed - failed0))
            })
            .collect();
        Tally {
            ok: self.ok - earlier.ok,
            failed: self.failed - earlier.failed,
            by_slot,
        }
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `users` users against `url`, each pausing `pace` between requests.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        url: &str,
        users: usize,
        pace: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        let tasks = (0..users)
            .map(|user| {
                let (stop, tally, client) = (stop.clone(), tally.clone(), client.clone());
                let url = url.to_string();
                runtime.spawn(async move {
                    let cookie = format!("hifi-user=demo-user-{user:03}");
                    while !stop.load(Ordering::Relaxed) {
                        let (slot, ok) = request(&client, &url, &cookie).await;
                        {
                            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                            let entry = t.by_slot.entry(slot).or_default();
                            if ok {
                                entry.0 += 1;
                                t.ok += 1;
                            } else {
                                entry.1 += 1;
                                t.failed += 1;
                            }
                        }
                        tokio::time::sleep(pace).await;
                    }
                })
            })
            .collect();
        Load { stop, tally, tasks }
    }

    /// What the users saw so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops every user (waiting for requests in flight) and returns the tally.
    pub fn stop(self, runtime: &tokio::runtime::Runtime) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let tasks = self.tasks;
        runtime.block_on(async {
            for task in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            }
        });
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn request(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
    cookie: &str,
) -> (String, bool) {
    let Ok(request) = hyper::Request::get(url)
        .header("cookie", cookie)
        .body(Empty::new())
    else {
        return ("?".into(), false);
    };
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Ok(Ok(response)) => {
            let slot = response
                .headers()
                .get("x-served-slot")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_string();
            let ok = response.status().is_success();
            // Read the body whole: a body cut short is a failure too.
            let complete = response.into_body().collect().await.is_ok();
            (slot, ok && complete)
        }
        _ => ("?".into(), false),
    }
}

/// One GET of `url` as a user would send it, its body read as JSON;
/// `None` when there is no 2xx answer or it is not JSON.
pub fn get_json(runtime: &tokio::runtime::Runtime, url: &str) -> Option<serde_json::Value> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::get(url)
        .header("cookie", "hifi-user=demo-reporter")
        .body(Empty::new())
        .ok()?;
    runtime.block_on(async {
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .ok()?
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    })
}
