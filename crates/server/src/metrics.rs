//! `/metrics` in Prometheus' text format: the API's own requests and
//! failed authentications, webhook deliveries, and — read from the state
//! database at each scrape, so they are right whoever did the work —
//! deployments by outcome and canary verdicts per environment.

use std::sync::Mutex;
use std::time::Duration;

use hifi_app::status::Counts;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    env: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    env: String,
    verdict: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabels {
    env: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The team server's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    auth_failures: Counter,
    deployments: Family<StateLabels, Gauge>,
    verdicts: Family<VerdictLabels, Gauge>,
    webhooks: Family<OutcomeLabels, Counter>,
    passes: Family<PassLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hifi");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "API requests answered, by route and status",
            requests.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "api_request_seconds",
            "Time to answer an API request",
            latency.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused for a missing, wrong, revoked or expired token",
            auth_failures.clone(),
        );
        let deployments = Family::<StateLabels, Gauge>::default();
        registry.register(
            "deployments",
            "Deployments recorded, by environment and outcome (state)",
            deployments.clone(),
        );
        let verdicts = Family::<VerdictLabels, Gauge>::default();
        registry.register(
            "canary_verdicts",
            "Canary steps judged, by environment and verdict",
            verdicts.clone(),
        );
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            webhooks.clone(),
        );
        let passes =
            Family::<PassLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            });
        registry.register(
            "reconcile_seconds",
            "Time the control plane took for one reconciliation pass, by environment and outcome",
            passes.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            passes,
            requests,
            latency,
            auth_failures,
            deployments,
            verdicts,
            webhooks,
        }
    }

    /// Notes an API request answered.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Notes a reconciliation pass of `env` that took `took`.
    pub fn reconcile(&self, env: &str, took: Duration, ok: bool) {
        self.passes
            .get_or_create(&PassLabels {
                env: env.to_string(),
                outcome: if ok { "ok" } else { "failed" },
            })
            .observe(took.as_secs_f64());
    }

    /// Notes a failed authentication.
    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    /// Notes a webhook delivery attempt (`delivered`, `failed`, `dropped`).
    pub fn webhook(&self, outcome: &str) {
        self.webhooks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The text exposition, with the counts read from the store just now.
    pub fn render(&self, counts: &Counts) -> String {
        self.deployments.clear();
        for (env, state, n) in &counts.deployments {
            self.deployments
                .get_or_create(&StateLabels {
                    env: env.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
        self.verdicts.clear();
        for (env, verdict, n) in &counts.verdicts {
            self.verdicts
                .get_or_create(&VerdictLabels {
                    env: env.clone(),
                    verdict: verdict.clone(),
                })
                .set(*n);
        }
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!("encoding the metrics: {e}");
        }
        text
    }
}
