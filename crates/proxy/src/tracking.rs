//! What is still running on a slot: in-flight requests, streaming responses
//! and upgraded connections, and the drain deadline that ends them.
//!
//! A [`SlotState`] lives as long as its (environment, service, slot) is in a
//! table or still has work in flight, and survives table updates, so counters
//! and in-flight counts stay continuous when a slot moves from candidate to
//! active to standby. hyper's connection future ends at an upgrade, so
//! upgraded connections are invisible to graceful shutdown (PRIOR-ART
//! pitfall 3); they are counted and closed here instead. Each slot has a
//! drain token: at a drain deadline the token is cancelled (closing every
//! tunnel and streaming body that registered with it) and replaced by a fresh
//! one, so work started later on a re-used slot name is not affected.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::metrics::{SHARDS, SlotMetrics};
use crate::workers::current_shard;

/// Identity of a slot's state: (environment, service, slot).
pub(crate) type SlotKey = (String, String, String);

/// Live state of one (environment, service, slot).
#[derive(Debug)]
pub(crate) struct SlotState {
    pub(crate) env: String,
    pub(crate) service: String,
    pub(crate) slot: String,
    pub(crate) metrics: SlotMetrics,
    /// Per shard, like the metrics' lifetime counters; each request gives
    /// back to the shard it took from.
    inflight: Box<[Inflight]>,
    upgraded: AtomicU64,
    drain: ArcSwap<CancellationToken>,
}

impl SlotState {
    fn new(key: &SlotKey) -> Self {
        SlotState {
            env: key.0.clone(),
            service: key.1.clone(),
            slot: key.2.clone(),
            metrics: SlotMetrics::new(),
            inflight: (0..SHARDS).map(|_| Inflight::default()).collect(),
            upgraded: AtomicU64::new(0),
            drain: ArcSwap::from_pointee(CancellationToken::new()),
        }
    }

    /// Requests whose response has not finished.
    pub(crate) fn inflight(&self) -> u64 {
        // A request may give back on one shard what it took on another;
        // the sum is right all the same.
        self.inflight
            .iter()
            .map(|n| n.0.load(Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Open upgraded connections.
    pub(crate) fn upgraded(&self) -> u64 {
        self.upgraded.load(Relaxed)
    }

    /// The token that the current drain deadline will cancel.
    pub(crate) fn drain_token(&self) -> CancellationToken {
        CancellationToken::clone(&self.drain.load())
    }

    /// Close everything registered so far and start a fresh token.
    pub(crate) fn close_tracked(&self) {
        let old = self.drain.swap(Arc::new(CancellationToken::new()));
        old.cancel();
    }

    fn idle(&self) -> bool {
        self.inflight() == 0 && self.upgraded() == 0
    }
}

/// One shard's count of requests in flight, on a cache line of its own.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Inflight(AtomicU64);

/// Counts one request as in flight until dropped (end of the response body,
/// or the request future being dropped when the client goes away). It holds
/// the slot's state as an `Arc` where it must outlive its caller (hyper's
/// response bodies), or borrows it (the HTTP/1 path, whose request holds
/// the slot anyway), which spares two writes of a reference count every
/// worker shares.
#[derive(Debug)]
pub(crate) struct InflightGuard<S: Deref<Target = SlotState> = Arc<SlotState>> {
    state: S,
    shard: usize,
}

impl<S: Deref<Target = SlotState>> InflightGuard<S> {
    pub(crate) fn new(state: S) -> Self {
        let shard = current_shard() % SHARDS;
        state.inflight[shard].0.fetch_add(1, Relaxed);
        state.metrics.started();
        InflightGuard { state, shard }
    }

    pub(crate) fn state(&self) -> &S {
        &self.state
    }
}

impl<S: Deref<Target = SlotState>> Drop for InflightGuard<S> {
    fn drop(&mut self) {
        self.state.inflight[self.shard].0.fetch_sub(1, Relaxed);
    }
}

/// Counts one upgraded connection until dropped.
#[derive(Debug)]
pub(crate) struct UpgradedGuard(Arc<SlotState>);

impl UpgradedGuard {
    pub(crate) fn new(state: Arc<SlotState>) -> Self {
        state.upgraded.fetch_add(1, Relaxed);
        UpgradedGuard(state)
    }
}

impl Drop for UpgradedGuard {
    fn drop(&mut self) {
        self.0.upgraded.fetch_sub(1, Relaxed);
    }
}

/// All slot states, keyed by (environment, service, slot). Only the control
/// path (table updates, admin queries, scrapes, the maintenance tick) takes
/// this lock; requests reach their `SlotState` through the routing table.
#[derive(Debug, Default)]
pub(crate) struct SlotRegistry {
    slots: Mutex<HashMap<SlotKey, Arc<SlotState>>>,
}

impl SlotRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<SlotKey, Arc<SlotState>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert/remove), so poisoning is ignored.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state for a key, created on first use.
    pub(crate) fn get_or_create(&self, env: &str, service: &str, slot: &str) -> Arc<SlotState> {
        let key = (env.to_owned(), service.to_owned(), slot.to_owned());
        self.lock()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(SlotState::new(&key)))
            .clone()
    }

    /// Every state, for queries and scrapes.
    pub(crate) fn all(&self) -> Vec<Arc<SlotState>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| (&a.env, &a.service, &a.slot).cmp(&(&b.env, &b.service, &b.slot)));
        v
    }

    /// States of one environment and slot name (optionally one service).
    pub(crate) fn matching(
        &self,
        env: &str,
        slot: &str,
        service: Option<&str>,
    ) -> Vec<Arc<SlotState>> {
        self.lock()
            .values()
            .filter(|s| s.env == env && s.slot == slot && service.is_none_or(|x| x == s.service))
            .cloned()
            .collect()
    }

    /// Forget states that no table uses and that have nothing in flight.
    /// `in_use` says whether a key is referenced by a live table.
    pub(crate) fn prune(&self, in_use: impl Fn(&SlotKey) -> bool) {
        self.lock().retain(|k, s| in_use(k) || !s.idle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_flight_add_up_across_threads_whichever_thread_ends_them() {
        let registry = SlotRegistry::default();
        let state = registry.get_or_create("prod", "catalog", "blue");
        // Taken on several threads, given back on others (as a task moved
        // between threads of a multi-threaded runtime would).
        let guards: Vec<InflightGuard> = std::thread::scope(|scope| {
            let taken: Vec<_> = (0..SHARDS + 2)
                .map(|_| scope.spawn(|| InflightGuard::new(state.clone())))
                .collect();
            taken.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(state.inflight(), (SHARDS + 2) as u64);
        assert!(!state.idle());
        let mut guards = guards;
        let last = guards.pop().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(move || drop(guards));
        });
        assert_eq!(state.inflight(), 1);
        drop(last);
        assert_eq!(state.inflight(), 0);
        assert!(state.idle());
        // Borrowing the state counts the same way.
        let borrowed = InflightGuard::new(&*state);
        assert_eq!(state.inflight(), 1);
        drop(borrowed);
        assert!(state.idle());
    }
}
