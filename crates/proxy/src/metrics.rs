//! Per-slot request metrics: lifetime counters for Prometheus and a
//! 15-minute ring of one-second buckets for the rollout engine's windowed
//! queries.
//!
//! The hot path only does relaxed atomic additions on memory owned by the
//! slot: no lock, no allocation, no map lookup. The lifetime counters are
//! kept per worker thread ([`SHARDS`] sets, each on cache lines of its
//! own), so the workers serving one slot do not write the same lines; a
//! scrape adds them up. Latency goes into a fixed log-scale histogram (4
//! buckets per power of two from 64 µs to ~67 s, so a reported quantile is
//! the upper bound of its bucket and at most ~19 % above the true value).
//! Window buckets are cleared two seconds ahead of use by a once-a-second
//! maintenance tick ([`SlotMetrics::clear_ahead`]); a recorder that finds a
//! stale bucket (the tick fell behind) clears it itself.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::workers::current_shard;

/// Seconds kept for windowed queries.
pub(crate) const WINDOW_SECS: u64 = 900;
/// Number of latency buckets: `< 64 µs`, 20 octaves × 4, and overflow.
pub(crate) const BUCKETS: usize = 82;

/// Response classes counted per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Status 100–199 (e.g. 101 for an upgrade).
    Informational = 0,
    /// 2xx.
    Success = 1,
    /// 3xx.
    Redirect = 2,
    /// 4xx.
    ClientError = 3,
    /// 5xx answered by the backend.
    ServerError = 4,
    /// 502/503/504 produced by the proxy itself.
    ProxyError = 5,
}

const CLASS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "proxy_error"];

/// How a request ended, as counted in `hifi_proxy_outcomes_total`: only the
/// backend's side (`backend_failed`, and 5xx among `backend_answered`) is
/// held against the slot; the client's side is counted apart, like nginx's
/// 499 and Envoy's downstream resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The backend answered (any status).
    BackendAnswered = 0,
    /// The backend refused, reset, timed out or broke off its answer, or
    /// the slot had no healthy backend.
    BackendFailed = 1,
    /// The client went away while sending its request or before the
    /// response was fully sent.
    ClientClosed = 2,
    /// The client's request could not be framed (broken chunked body).
    BadRequest = 3,
    /// The client went away while waiting for the response headers.
    Abandoned = 4,
}

const OUTCOME_LABELS: [&str; 5] = [
    "backend_answered",
    "backend_failed",
    "client_closed",
    "bad_request",
    "abandoned",
];

impl Class {
    /// The class of a backend's status code.
    pub(crate) fn of(status: u16) -> Class {
        match status {
            0..=199 => Class::Informational,
            200..=299 => Class::Success,
            300..=399 => Class::Redirect,
            400..=499 => Class::ClientError,
            _ => Class::ServerError,
        }
    }

    fn is_error(self) -> bool {
        matches!(self, Class::ServerError | Class::ProxyError)
    }
}

/// Histogram bucket of a latency in microseconds.
pub(crate) fn bucket_index(us: u64) -> usize {
    if us < 64 {
        return 0;
    }
    let log2 = 63 - us.leading_zeros() as usize; // >= 6
    let sub = ((us >> (log2 - 2)) & 3) as usize;
    (1 + (log2 - 6) * 4 + sub).min(BUCKETS - 1)
}

/// Upper bound, in microseconds, of a histogram bucket (`u64::MAX` for overflow).
pub(crate) fn bucket_upper_us(i: usize) -> u64 {
    if i == 0 {
        return 64;
    }
    if i >= BUCKETS - 1 {
        return u64::MAX;
    }
    let log2 = 6 + (i - 1) / 4;
    let sub = ((i - 1) % 4) as u64;
    (4 + sub + 1) << (log2 - 2)
}

/// One second of the ring.
struct Second {
    /// Unix second this bucket holds, 0 when cleared.
    stamp: AtomicU64,
    requests: AtomicU32,
    errors: AtomicU32,
    client_closed: AtomicU32,
    bad_requests: AtomicU32,
    abandoned: AtomicU32,
    hist: [AtomicU32; BUCKETS],
    /// Elapsed time of the abandoned requests, so a query can count those
    /// beyond its own `slow_ms`.
    abandoned_hist: [AtomicU32; BUCKETS],
}

impl Second {
    fn new() -> Self {
        Second {
            stamp: AtomicU64::new(0),
            requests: AtomicU32::new(0),
            errors: AtomicU32::new(0),
            client_closed: AtomicU32::new(0),
            bad_requests: AtomicU32::new(0),
            abandoned: AtomicU32::new(0),
            hist: std::array::from_fn(|_| AtomicU32::new(0)),
            abandoned_hist: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn clear(&self) {
        self.requests.store(0, Relaxed);
        self.errors.store(0, Relaxed);
        self.client_closed.store(0, Relaxed);
        self.bad_requests.store(0, Relaxed);
        self.abandoned.store(0, Relaxed);
        for h in self.hist.iter().chain(&self.abandoned_hist) {
            h.store(0, Relaxed);
        }
    }
}

/// Sets of lifetime counters per slot; a thread records into the set of
/// its worker index (see [`current_shard`]), modulo this.
pub(crate) const SHARDS: usize = 8;

/// The lifetime counters of one slot as the threads of one shard record
/// them, aligned so that no two shards share a cache line (or its
/// prefetched neighbour).
#[repr(align(128))]
struct Lifetime {
    requests: AtomicU64,
    classes: [AtomicU64; 6],
    outcomes: [AtomicU64; 5],
    hist: [AtomicU64; BUCKETS],
    latency_sum_us: AtomicU64,
}

impl Lifetime {
    fn new() -> Self {
        Lifetime {
            requests: AtomicU64::new(0),
            classes: std::array::from_fn(|_| AtomicU64::new(0)),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            hist: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_us: AtomicU64::new(0),
        }
    }
}

/// Lifetime latency into `mine`; returns the histogram bucket.
#[inline]
fn record_latency(mine: &Lifetime, latency: Duration) -> usize {
    let us = latency.as_micros().min(u64::MAX as u128) as u64;
    let b = bucket_index(us);
    mine.hist[b].fetch_add(1, Relaxed);
    mine.latency_sum_us.fetch_add(us, Relaxed);
    b
}

/// Metrics of one (environment, service, slot).
pub(crate) struct SlotMetrics {
    lifetime: Box<[Lifetime]>,
    ring: Box<[Second]>,
}

impl std::fmt::Debug for SlotMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotMetrics")
            .field("requests", &self.sample().requests)
            .finish_non_exhaustive()
    }
}

/// Current unix time in whole seconds and milliseconds.
pub(crate) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

impl SlotMetrics {
    pub(crate) fn new() -> Self {
        SlotMetrics {
            lifetime: (0..SHARDS).map(|_| Lifetime::new()).collect(),
            ring: (0..WINDOW_SECS).map(|_| Second::new()).collect(),
        }
    }

    /// This thread's set of lifetime counters.
    #[inline]
    fn mine(&self) -> &Lifetime {
        &self.lifetime[current_shard() % SHARDS]
    }

    /// A request was routed to this slot.
    #[inline]
    pub(crate) fn started(&self) {
        self.mine().requests.fetch_add(1, Relaxed);
    }

    /// A response (headers) was produced for a request routed to this slot.
    #[inline]
    pub(crate) fn finished(&self, class: Class, latency: Duration) {
        let mine = self.mine();
        let b = record_latency(mine, latency);
        mine.classes[class as usize].fetch_add(1, Relaxed);
        let outcome = if class == Class::ProxyError {
            Outcome::BackendFailed
        } else {
            Outcome::BackendAnswered
        };
        mine.outcomes[outcome as usize].fetch_add(1, Relaxed);
        let slot = self.second();
        slot.requests.fetch_add(1, Relaxed);
        if class.is_error() {
            slot.errors.fetch_add(1, Relaxed);
        }
        slot.hist[b].fetch_add(1, Relaxed);
    }

    /// The client went away while waiting for the response headers, after
    /// `elapsed`: a request with that latency, an error only for queries
    /// whose `slow_ms` it exceeds.
    pub(crate) fn abandoned(&self, elapsed: Duration) {
        let mine = self.mine();
        let b = record_latency(mine, elapsed);
        mine.outcomes[Outcome::Abandoned as usize].fetch_add(1, Relaxed);
        let slot = self.second();
        slot.requests.fetch_add(1, Relaxed);
        slot.abandoned.fetch_add(1, Relaxed);
        slot.hist[b].fetch_add(1, Relaxed);
        slot.abandoned_hist[b].fetch_add(1, Relaxed);
    }

    /// The client went away while sending its request (`answered` false:
    /// it counts as a request of its own) or while its response was being
    /// sent (`answered` true: the response was counted already).
    pub(crate) fn client_closed(&self, answered: bool) {
        self.mine().outcomes[Outcome::ClientClosed as usize].fetch_add(1, Relaxed);
        let slot = self.second();
        if !answered {
            slot.requests.fetch_add(1, Relaxed);
        }
        slot.client_closed.fetch_add(1, Relaxed);
    }

    /// The client's request body could not be framed (the proxy answered 400).
    pub(crate) fn bad_request(&self) {
        self.mine().outcomes[Outcome::BadRequest as usize].fetch_add(1, Relaxed);
        let slot = self.second();
        slot.requests.fetch_add(1, Relaxed);
        slot.bad_requests.fetch_add(1, Relaxed);
    }

    /// The backend broke off a response whose headers were counted already
    /// (reset or closed mid-body): an error of the slot.
    pub(crate) fn failed_midway(&self) {
        self.mine().outcomes[Outcome::BackendFailed as usize].fetch_add(1, Relaxed);
        self.second().errors.fetch_add(1, Relaxed);
    }

    /// A non-zero `grpc-status` ended a response counted already as
    /// answered: an error of the slot.
    pub(crate) fn grpc_error(&self) {
        self.second().errors.fetch_add(1, Relaxed);
    }

    /// The ring's bucket for the current second, claimed (and cleared if
    /// stale) on the way.
    #[inline]
    fn second(&self) -> &Second {
        let sec = unix_now().as_secs();
        let slot = &self.ring[(sec % WINDOW_SECS) as usize];
        let stamp = slot.stamp.load(Relaxed);
        if stamp != sec {
            if stamp == 0 {
                // Cleared ahead by the maintenance tick: claim it.
                let _ = slot.stamp.compare_exchange(0, sec, Relaxed, Relaxed);
            } else if stamp < sec
                && slot
                    .stamp
                    .compare_exchange(stamp, sec, Relaxed, Relaxed)
                    .is_ok()
            {
                // The tick fell behind (overloaded machine): clear it here.
                slot.clear();
            }
        }
        slot
    }

    /// Clear the buckets of the next seconds so the hot path finds them empty.
    pub(crate) fn clear_ahead(&self, now_sec: u64) {
        for ahead in 2..=3 {
            let sec = now_sec + ahead;
            let slot = &self.ring[(sec % WINDOW_SECS) as usize];
            let stamp = slot.stamp.load(Relaxed);
            if stamp != 0 && stamp < sec {
                slot.stamp.store(0, Relaxed);
                slot.clear();
            }
        }
    }

    /// Add the window since `since_sec` (inclusive) to `acc`.
    pub(crate) fn window_into(&self, since_sec: u64, now_sec: u64, acc: &mut Window) {
        for s in self.ring.iter() {
            let stamp = s.stamp.load(Relaxed);
            if stamp != 0 && stamp >= since_sec && stamp <= now_sec {
                acc.requests += u64::from(s.requests.load(Relaxed));
                acc.errors += u64::from(s.errors.load(Relaxed));
                acc.client_closed += u64::from(s.client_closed.load(Relaxed));
                acc.bad_requests += u64::from(s.bad_requests.load(Relaxed));
                acc.abandoned += u64::from(s.abandoned.load(Relaxed));
                for (a, h) in acc.hist.iter_mut().zip(s.hist.iter()) {
                    *a += u64::from(h.load(Relaxed));
                }
                for (a, h) in acc.abandoned_hist.iter_mut().zip(s.abandoned_hist.iter()) {
                    *a += u64::from(h.load(Relaxed));
                }
            }
        }
    }

    /// A consistent-enough copy of the lifetime counters for a scrape.
    pub(crate) fn sample(&self) -> LifetimeSample {
        let sum = |read: &dyn Fn(&Lifetime) -> &AtomicU64| -> u64 {
            self.lifetime
                .iter()
                .map(|l| read(l).load(Relaxed))
                .fold(0, u64::wrapping_add)
        };
        let mut buckets = Vec::with_capacity(BUCKETS / 4 + 2);
        let mut pending = 0u64;
        let mut count = 0u64;
        for i in 0..BUCKETS {
            let n = sum(&|l| &l.hist[i]);
            pending += n;
            count += n;
            let upper = bucket_upper_us(i);
            // Export the powers of two only (every fourth bound) to keep the
            // series short; the finer buckets serve the windowed quantiles.
            if upper == u64::MAX {
                buckets.push((f64::MAX, pending));
                pending = 0;
            } else if i == 0 || i % 4 == 0 {
                buckets.push((upper as f64 / 1e6, pending));
                pending = 0;
            }
        }
        LifetimeSample {
            requests: sum(&|l| &l.requests),
            classes: std::array::from_fn(|i| sum(&|l| &l.classes[i])),
            outcomes: std::array::from_fn(|i| sum(&|l| &l.outcomes[i])),
            buckets,
            count,
            sum_seconds: sum(&|l| &l.latency_sum_us) as f64 / 1e6,
        }
    }
}

/// Lifetime counters of one slot, read at scrape time.
#[derive(Debug)]
pub(crate) struct LifetimeSample {
    requests: u64,
    classes: [u64; 6],
    outcomes: [u64; 5],
    /// (upper bound in seconds, count in this bucket only).
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum_seconds: f64,
}

/// Accumulator for a windowed query.
pub(crate) struct Window {
    requests: u64,
    errors: u64,
    client_closed: u64,
    bad_requests: u64,
    abandoned: u64,
    hist: [u64; BUCKETS],
    abandoned_hist: [u64; BUCKETS],
}

impl Window {
    pub(crate) fn new() -> Self {
        Window {
            requests: 0,
            errors: 0,
            client_closed: 0,
            bad_requests: 0,
            abandoned: 0,
            hist: [0; BUCKETS],
            abandoned_hist: [0; BUCKETS],
        }
    }

    /// Abandoned requests whose elapsed time certainly exceeded `slow_ms`:
    /// those in histogram buckets whose lower bound is at or above it (a
    /// bucket straddling `slow_ms` is not counted, so an abandonment is
    /// never held against the slot for less than `slow_ms`).
    fn abandoned_beyond(&self, slow_ms: u64) -> u64 {
        let slow_us = slow_ms.saturating_mul(1000);
        self.abandoned_hist
            .iter()
            .enumerate()
            .filter(|(i, _)| *i > 0 && bucket_upper_us(i - 1) >= slow_us)
            .map(|(_, n)| n)
            .sum()
    }

    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = bucket_upper_us(i);
                // Overflow bucket: report its lower bound, the largest known value.
                let us = if upper == u64::MAX {
                    bucket_upper_us(i - 1)
                } else {
                    upper
                };
                return Some(us as f64 / 1000.0);
            }
        }
        None
    }

    pub(crate) fn into_stats(self, query: &StatsQuery) -> Stats {
        let abandoned_slow = query.slow_ms.map_or(0, |ms| self.abandoned_beyond(ms));
        let errors = self.errors + abandoned_slow;
        Stats {
            env: query.env.clone(),
            slot: query.slot.clone(),
            service: query.service.clone(),
            since_ms: query.since_ms,
            requests: self.requests,
            errors,
            error_ratio: if self.requests == 0 {
                0.0
            } else {
                errors as f64 / self.requests as f64
            },
            p50_ms: self.quantile_ms(0.50),
            p99_ms: self.quantile_ms(0.99),
            client_closed: self.client_closed,
            bad_requests: self.bad_requests,
            abandoned: self.abandoned,
            abandoned_slow,
        }
    }
}

/// A windowed query: `GET /stats?env=E&slot=S[&service=X][&since_ms=T]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsQuery {
    /// Environment.
    pub env: String,
    /// Slot name (`blue`, `green`, …).
    pub slot: String,
    /// Restrict to one service; all services of the slot otherwise.
    #[serde(default)]
    pub service: Option<String>,
    /// Count requests completed at or after this unix time in milliseconds.
    /// The resolution is one second: the second containing `since_ms` is
    /// included whole. Only the last 15 minutes are kept.
    #[serde(default)]
    pub since_ms: u64,
    /// Latency limit for abandoned requests, milliseconds: a request whose
    /// client gave up waiting for the response headers after more than this
    /// counts in `errors` (and in `abandoned_slow`), so a hanging release
    /// fails its canary step even when its users time out first. Without
    /// it, abandoned requests count only in the latency and in `abandoned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_ms: Option<u64>,
}

/// The answer to a [`StatsQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Environment.
    pub env: String,
    /// Slot.
    pub slot: String,
    /// Service, when the query named one.
    pub service: Option<String>,
    /// The query's start.
    pub since_ms: u64,
    /// Requests that ended in the window: answered by the backend or by the
    /// proxy (502/503/504), abandoned by their client, or ended by their
    /// client (`client_closed` before an answer, `bad_requests`).
    pub requests: u64,
    /// Backend 5xx plus backend failures (502/503/504 made by the proxy, a
    /// response body broken off by the backend, a non-zero `grpc-status`),
    /// plus `abandoned_slow`. Client-side endings never count here.
    pub errors: u64,
    /// `errors / requests`, 0 when there were no requests.
    pub error_ratio: f64,
    /// Median time to response headers, milliseconds (bucket upper bound).
    pub p50_ms: Option<f64>,
    /// 99th percentile time to response headers, milliseconds.
    pub p99_ms: Option<f64>,
    /// Requests whose client went away while sending the request or before
    /// the response was fully sent (nginx's 499); not errors of the slot.
    #[serde(default)]
    pub client_closed: u64,
    /// Requests whose client sent a body the proxy could not frame (it
    /// answered 400); not errors of the slot.
    #[serde(default)]
    pub bad_requests: u64,
    /// Requests whose client gave up waiting for the response headers; their
    /// elapsed time is in the latency quantiles.
    #[serde(default)]
    pub abandoned: u64,
    /// Abandoned requests beyond the query's `slow_ms` (0 without it);
    /// included in `errors`.
    #[serde(default)]
    pub abandoned_slow: u64,
}

/// One slot's series for a scrape.
#[derive(Debug)]
pub(crate) struct SlotSample {
    pub(crate) env: String,
    pub(crate) service: String,
    pub(crate) slot: String,
    pub(crate) lifetime: LifetimeSample,
    pub(crate) inflight: u64,
    pub(crate) upgraded: u64,
}

/// One backend's health for a scrape.
#[derive(Debug)]
pub(crate) struct BackendSample {
    pub(crate) env: String,
    pub(crate) service: String,
    pub(crate) slot: String,
    pub(crate) backend: String,
    pub(crate) healthy: bool,
}

/// Everything a scrape shows, copied out of the live structures first so the
/// encoder holds no lock.
#[derive(Debug, Default)]
pub(crate) struct Scrape {
    pub(crate) slots: Vec<SlotSample>,
    pub(crate) backends: Vec<BackendSample>,
    /// Requests per environment that matched no route (or arrived while the
    /// table was being removed).
    pub(crate) unrouted: Vec<(String, u64)>,
    /// Requests per environment refused before routing (malformed head).
    pub(crate) bad_requests: Vec<(String, u64)>,
}

impl Scrape {
    /// Prometheus text exposition.
    pub(crate) fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Encoding into a String only fails if a collector fails, which ours
        // do not; an empty answer is the safe fallback.
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        fn labels(s: &SlotSample) -> [(&'static str, &str); 3] {
            [
                ("env", s.env.as_str()),
                ("service", s.service.as_str()),
                ("slot", s.slot.as_str()),
            ]
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_requests",
            "Requests routed to the slot.",
            None,
            MetricType::Counter,
        )?;
        for s in &self.slots {
            ConstCounter::new(s.lifetime.requests).encode(e.encode_family(&labels(s))?)?;
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_responses",
            "Responses by status class; proxy_error is a 502/503/504 made by the proxy.",
            None,
            MetricType::Counter,
        )?;
        for s in &self.slots {
            for (class, n) in CLASS_LABELS.iter().zip(s.lifetime.classes) {
                let [a, b, c] = labels(s);
                let set = [a, b, c, ("class", *class)];
                ConstCounter::new(n).encode(e.encode_family(&set)?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_outcomes",
            "How requests ended: backend_answered, backend_failed (counted against the slot), client_closed, bad_request, abandoned (the client's side).",
            None,
            MetricType::Counter,
        )?;
        for s in &self.slots {
            for (outcome, n) in OUTCOME_LABELS.iter().zip(s.lifetime.outcomes) {
                let [a, b, c] = labels(s);
                let set = [a, b, c, ("outcome", *outcome)];
                ConstCounter::new(n).encode(e.encode_family(&set)?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_inflight_requests",
            "Requests whose response has not finished (streaming bodies included).",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.slots {
            ConstGauge::new(s.inflight as i64).encode(e.encode_family(&labels(s))?)?;
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_upgraded_connections",
            "Open upgraded (WebSocket) connections.",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.slots {
            ConstGauge::new(s.upgraded as i64).encode(e.encode_family(&labels(s))?)?;
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_request_duration_seconds",
            "Time from request to response headers.",
            None,
            MetricType::Histogram,
        )?;
        for s in &self.slots {
            e.encode_family(&labels(s))?
                .encode_histogram::<NoLabelSet>(
                    s.lifetime.sum_seconds,
                    s.lifetime.count,
                    &s.lifetime.buckets,
                    None,
                )?;
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_backend_healthy",
            "1 when the backend passes its health check and is in rotation.",
            None,
            MetricType::Gauge,
        )?;
        for b in &self.backends {
            let set = [
                ("env", b.env.as_str()),
                ("service", b.service.as_str()),
                ("slot", b.slot.as_str()),
                ("backend", b.backend.as_str()),
            ];
            ConstGauge::new(i64::from(b.healthy)).encode(e.encode_family(&set)?)?;
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_unrouted_requests",
            "Requests that matched no route of the environment.",
            None,
            MetricType::Counter,
        )?;
        for (env, n) in &self.unrouted {
            ConstCounter::new(*n).encode(e.encode_family(&[("env", env.as_str())])?)?;
        }
        let mut e = encoder.encode_descriptor(
            "hifi_proxy_bad_requests",
            "Requests refused before routing: a malformed or ambiguous head (400, 405, 414, 431, 501, 505).",
            None,
            MetricType::Counter,
        )?;
        for (env, n) in &self.bad_requests {
            ConstCounter::new(*n).encode(e.encode_family(&[("env", env.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        for us in [0, 63, 64, 65, 100, 1_000, 12_345, 1_000_000, 60_000_000] {
            let i = bucket_index(us);
            assert!(us < bucket_upper_us(i), "{us} in bucket {i}");
            if i > 0 {
                assert!(us >= bucket_upper_us(i - 1), "{us} above bucket {}", i - 1);
            }
        }
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn lifetime_counters_recorded_on_many_threads_add_up() {
        let m = SlotMetrics::new();
        std::thread::scope(|scope| {
            for _ in 0..SHARDS + 3 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        m.started();
                        m.finished(Class::Success, Duration::from_micros(100));
                    }
                    m.started();
                    m.finished(Class::ProxyError, Duration::from_millis(2));
                });
            }
        });
        let threads = (SHARDS + 3) as u64;
        let s = m.sample();
        // More threads than shards: some shared one, and nothing was lost.
        assert_eq!(s.requests, threads * 1_001);
        assert_eq!(s.count, threads * 1_001);
        assert_eq!(s.classes[Class::Success as usize], threads * 1_000);
        assert_eq!(s.classes[Class::ProxyError as usize], threads);
        assert_eq!(
            s.outcomes[Outcome::BackendAnswered as usize]
                + s.outcomes[Outcome::BackendFailed as usize],
            threads * 1_001
        );
        let expected = threads as f64 * (1_000.0 * 100e-6 + 2e-3);
        assert!((s.sum_seconds - expected).abs() < 1e-9, "{}", s.sum_seconds);
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), s.count);
    }

    #[test]
    fn window_quantiles() {
        let m = SlotMetrics::new();
        for _ in 0..99 {
            m.finished(Class::Success, Duration::from_micros(1_000));
        }
        m.finished(Class::ProxyError, Duration::from_millis(500));
        let mut w = Window::new();
        let now = unix_now().as_secs();
        m.window_into(now - 5, now, &mut w);
        let q = StatsQuery {
            env: "e".into(),
            slot: "s".into(),
            service: None,
            since_ms: 0,
            slow_ms: None,
        };
        let s = w.into_stats(&q);
        assert_eq!((s.requests, s.errors), (100, 1));
        let p50 = s.p50_ms.expect("p50");
        assert!((1.0..1.2).contains(&p50), "{p50}");
        let p99 = s.p99_ms.expect("p99");
        assert!((1.0..1.2).contains(&p99), "{p99}");
    }

    #[test]
    fn abandoned_requests_are_errors_only_beyond_slow_ms() {
        let m = SlotMetrics::new();
        m.finished(Class::Success, Duration::from_millis(5));
        m.abandoned(Duration::from_millis(2_000));
        m.abandoned(Duration::from_millis(10));
        m.client_closed(false);
        m.client_closed(true);
        m.bad_request();
        let now = unix_now().as_secs();
        let stats = |slow_ms| {
            let mut w = Window::new();
            m.window_into(now - 5, now, &mut w);
            w.into_stats(&StatsQuery {
                env: "e".into(),
                slot: "s".into(),
                service: None,
                since_ms: 0,
                slow_ms,
            })
        };
        let s = stats(None);
        assert_eq!(
            (s.requests, s.errors, s.abandoned, s.abandoned_slow),
            (5, 0, 2, 0)
        );
        assert_eq!((s.client_closed, s.bad_requests), (2, 1));
        let s = stats(Some(1_000));
        assert_eq!((s.errors, s.abandoned_slow), (1, 1));
        assert!((s.error_ratio - 0.2).abs() < 1e-9, "{s:?}");
        // 2 s sits in a bucket that straddles 1.9 s: not counted.
        assert_eq!(stats(Some(1_900)).abandoned_slow, 0);
        assert_eq!(stats(Some(5)).abandoned_slow, 2);
    }
}
