//! The compiled, immutable form of a routing table that requests read.
//!
//! An environment's [`EnvCell`] holds its current [`CompiledTable`] behind an
//! `ArcSwap`: an update builds a complete new `CompiledTable` and stores it in
//! one step, so a request sees the old table or the new one, never a mix.
//! Slots whose name, backends and health path are unchanged are carried over
//! from the previous table (keeping their connection pool warm); others get
//! a new client, and the old one is dropped with the last reference to the
//! old slot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use crate::h1::pool::RawPool;
use crate::health::{BackendHealth, HealthRegistry};
use crate::router::Router;
use crate::table::{Protocol, UserKey, ValidService, ValidSlot, ValidTable};
use crate::tracking::{SlotRegistry, SlotState};
use crate::upstream::{H2Pool, Pool, Upstream, UpstreamConfig};

/// The live table of one environment, shared by its listeners.
#[derive(Debug)]
pub(crate) struct EnvCell {
    pub(crate) name: String,
    pub(crate) table: ArcSwapOption<CompiledTable>,
    /// Requests that matched no route (or arrived without a table).
    pub(crate) unrouted: AtomicU64,
    /// Requests refused before routing because their head was malformed.
    pub(crate) bad_requests: AtomicU64,
}

impl EnvCell {
    pub(crate) fn new(name: &str) -> Self {
        EnvCell {
            name: name.to_owned(),
            table: ArcSwapOption::empty(),
            unrouted: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
        }
    }
}

/// One environment's compiled table.
#[derive(Debug)]
pub(crate) struct CompiledTable {
    pub(crate) valid: ValidTable,
    pub(crate) listen: SocketAddr,
    pub(crate) preview_listen: Option<SocketAddr>,
    pub(crate) user_key: UserKey,
    pub(crate) preview_token: Option<String>,
    /// The preview listener asks for the token too: it is bound to an
    /// address other hosts can reach (not loopback).
    pub(crate) preview_needs_token: bool,
    pub(crate) router: Router,
    pub(crate) services: Vec<CompiledService>,
}

impl CompiledTable {
    /// The service whose internal listener is `addr`.
    #[inline]
    pub(crate) fn internal_service(&self, addr: SocketAddr) -> Option<&CompiledService> {
        self.services.iter().find(|s| s.internal_listen == addr)
    }

    /// Every listener address of the table.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.listen)
            .chain(self.preview_listen)
            .chain(self.services.iter().map(|s| s.internal_listen))
            .collect()
    }

    /// Every slot of the table with its role.
    pub(crate) fn slots(
        &self,
    ) -> impl Iterator<Item = (&CompiledService, &Arc<CompiledSlot>, &'static str)> {
        self.services.iter().flat_map(|s| {
            std::iter::once((s, &s.active, "active"))
                .chain(s.candidate.iter().map(move |(c, _)| (s, c, "candidate")))
                .chain(s.standby.iter().map(move |sb| (s, sb, "standby")))
        })
    }
}

/// One service of a compiled table.
#[derive(Debug)]
pub(crate) struct CompiledService {
    pub(crate) name: String,
    pub(crate) internal_listen: SocketAddr,
    pub(crate) active: Arc<CompiledSlot>,
    /// Candidate and its threshold in buckets (weight × 100).
    pub(crate) candidate: Option<(Arc<CompiledSlot>, u32)>,
    pub(crate) standby: Option<Arc<CompiledSlot>>,
}

impl CompiledService {
    /// The slot of this service with the given name, if any.
    pub(crate) fn slot_named(&self, name: &[u8]) -> Option<&Arc<CompiledSlot>> {
        std::iter::once(&self.active)
            .chain(self.candidate.as_ref().map(|(c, _)| c))
            .chain(self.standby.as_ref())
            .find(|s| s.name.as_bytes() == name)
    }
}

/// A slot of a service in one compiled table.
#[derive(Debug)]
pub(crate) struct CompiledSlot {
    pub(crate) name: String,
    /// `x-hifi-slot` value, built once.
    pub(crate) header: HeaderValue,
    pub(crate) state: Arc<SlotState>,
    pub(crate) backends: Vec<Backend>,
    /// What the backends speak.
    pub(crate) protocol: Protocol,
    /// The service's own response-header timeout, if it has one.
    pub(crate) timeout: Option<std::time::Duration>,
    health_path: String,
    next: AtomicUsize,
    pub(crate) upstream: Upstream,
}

/// A backend of a slot.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) health: Arc<BackendHealth>,
    /// Idle connections to this backend (hyper's, for HTTP/2 clients),
    /// dropped with the slot.
    pub(crate) pool: Arc<Pool>,
    /// Idle connections of the HTTP/1 path, dropped with the slot.
    pub(crate) raw: RawPool,
    /// HTTP/2 connections, for h2c and gRPC backends.
    pub(crate) h2: H2Pool,
}

impl CompiledSlot {
    /// Round-robin over the healthy backends.
    #[inline]
    pub(crate) fn pick(&self) -> Option<&Backend> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Relaxed);
        (0..n)
            .map(|i| &self.backends[(start + i) % n])
            .find(|b| b.health.is_healthy())
    }

    fn same_as(&self, slot: &ValidSlot, svc: &ValidService) -> bool {
        self.name == slot.name
            && self.health_path == svc.health
            && self.protocol == slot.protocol
            && self.timeout == svc.request_timeout
            && self.backends.len() == slot.backends.len()
            && self
                .backends
                .iter()
                .zip(&slot.backends)
                .all(|(b, a)| b.addr == *a)
    }
}

/// What compiling a table needs from the proxy.
pub(crate) struct Compiler<'a> {
    pub(crate) slots: &'a SlotRegistry,
    pub(crate) health: &'a HealthRegistry,
    pub(crate) upstream: &'a UpstreamConfig,
}

impl Compiler<'_> {
    /// Compile `valid`, re-using unchanged slots of `previous`.
    pub(crate) fn compile(
        &self,
        valid: ValidTable,
        previous: Option<&CompiledTable>,
    ) -> CompiledTable {
        let env = valid.spec.env.clone();
        let mut services = Vec::with_capacity(valid.services.len());
        for s in &valid.services {
            let old = previous.and_then(|p| p.services.iter().find(|o| o.name == s.name));
            let slot = |v: &ValidSlot| -> Arc<CompiledSlot> {
                if let Some(reuse) = old.and_then(|o| {
                    std::iter::once(&o.active)
                        .chain(o.candidate.as_ref().map(|(c, _)| c))
                        .chain(o.standby.as_ref())
                        .find(|r| r.same_as(v, s))
                }) {
                    return reuse.clone();
                }
                Arc::new(CompiledSlot {
                    name: v.name.clone(),
                    // Slot names are validated to a header-safe alphabet.
                    header: HeaderValue::from_str(&v.name)
                        .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
                    state: self.slots.get_or_create(&env, &s.name, &v.name),
                    backends: v
                        .backends
                        .iter()
                        .map(|a| Backend {
                            addr: *a,
                            health: self.health.get_or_create(*a, &s.health, v.protocol),
                            pool: Arc::new(Pool::new(self.upstream.shards)),
                            raw: RawPool::new(self.upstream.shards),
                            h2: H2Pool::new(self.upstream.shards),
                        })
                        .collect(),
                    protocol: v.protocol,
                    timeout: s.request_timeout,
                    health_path: s.health.clone(),
                    next: AtomicUsize::new(0),
                    upstream: Upstream::new(self.upstream),
                })
            };
            services.push(CompiledService {
                name: s.name.clone(),
                internal_listen: s.internal_listen,
                active: slot(&s.active),
                candidate: s.candidate.as_ref().map(|(c, t)| (slot(c), *t)),
                standby: s.standby.as_ref().map(slot),
            });
        }
        let router = Router::new(
            valid
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.route.as_str(), s.host.as_deref(), i)),
        );
        CompiledTable {
            listen: valid.listen,
            preview_listen: valid.preview_listen,
            user_key: valid.user_key.clone(),
            preview_token: valid.spec.preview_token.clone(),
            preview_needs_token: valid.spec.preview_token.is_some()
                && valid.preview_listen.is_some_and(|a| !a.ip().is_loopback()),
            router,
            services,
            valid,
        }
    }
}
