//! One picker of free loopback ports, for listeners a test asks something
//! to bind on a port it names beforehand (an environment's public port, a
//! proxy's listener, an internal listener).
//!
//! Why the range is safe:
//!
//! - **Below the ephemeral range.** Linux hands out ports for `bind(0)` and
//!   outgoing connections from `ip_local_port_range`, 32768 and up by
//!   default. The ports picked here are all below it, so nothing that binds
//!   port 0 — test backends, service instances, the proxy's internal
//!   listeners, another test's client sockets — can take a picked port in
//!   the window between picking it and the test binding it.
//! - **A per-process offset.** Each process starts its walk at a block of
//!   the range chosen by its process id, then walks on from there, so test
//!   binaries running at the same time (two `cargo test` runs, or
//!   worktrees side by side) rarely try the same ports.
//! - **Checked free.** A port is returned only if binding it on 127.0.0.1
//!   succeeded just now (the probe is closed again at once).
//! - **Bounded.** The walk tries each port of the range at most once per
//!   call, then panics saying which range was exhausted, instead of
//!   spinning forever on a machine whose ports are all taken.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: above the well-known and common service
/// ports (8000s, for one, where the demo listens).
pub const LOW: u16 = 10_000;

/// One past the highest port handed out: below 32768, where the kernel's
/// default ephemeral range begins.
pub const HIGH: u16 = 32_000;

/// How many consecutive ports a process walks before it reaches the start
/// of the next process's block.
const BLOCK: u32 = 200;

/// How far this process has walked, across calls and threads.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A loopback port in `LOW..HIGH`, free when this returns.
///
/// Consecutive calls in one process return different ports (the walk moves
/// on past every port tried); nothing holds the port, so bind it soon.
///
/// # Panics
///
/// When no port of `LOW..HIGH` could be bound on 127.0.0.1 after trying
/// each of them once.
pub fn loopback_port() -> u16 {
    let blocks = u32::from(HIGH - LOW) / BLOCK;
    pick(&NEXT, std::process::id() % blocks * BLOCK)
}

/// The first port that binds, walking from `offset` past the `next` ports
/// tried before.
fn pick(next: &AtomicU32, offset: u32) -> u16 {
    let span = u32::from(HIGH - LOW);
    for _ in 0..span {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let port = port_at(offset.wrapping_add(n) % span);
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port in {LOW}..{HIGH}: tried each of them once; \
         is something holding this range?"
    );
}

/// The port `index` places into the range (`index < HIGH - LOW`).
fn port_at(index: u32) -> u16 {
    let index = u16::try_from(index).unwrap_or_else(|_| panic!("port index {index} out of range"));
    LOW + index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_in_range() {
        let ports: Vec<u16> = (0..50).map(|_| loopback_port()).collect();
        for port in &ports {
            assert!((LOW..HIGH).contains(port), "{port} out of {LOW}..{HIGH}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, *port)).expect("the port is free");
        }
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    }

    #[test]
    fn a_taken_port_is_skipped() {
        // A walk of its own, from a block no process id of these tests is
        // likely to start at.
        let offset = u32::from(HIGH - LOW) - 7;
        let taken = port_at(offset);
        // Held by this test, or by someone else: either way it is taken.
        let _held = TcpListener::bind((Ipv4Addr::LOCALHOST, taken));
        let port = pick(&AtomicU32::new(0), offset);
        assert_ne!(port, taken);
        assert!(port > taken, "walked on from {taken}, got {port}");
    }

    #[test]
    fn the_walk_wraps_around_to_the_bottom_of_the_range() {
        let last = u32::from(HIGH - LOW) - 1;
        assert_eq!(port_at(last), HIGH - 1);
        let next = AtomicU32::new(1);
        let port = pick(&next, last);
        assert!((LOW..HIGH - 1).contains(&port), "{port}");
    }

    #[test]
    fn the_range_is_below_this_machines_ephemeral_range() {
        // Linux only; elsewhere there is nothing to read.
        let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
            return;
        };
        let first: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
        assert!(
            HIGH <= first,
            "ports up to {HIGH} are handed out, but the kernel's ephemeral range starts at {first}"
        );
    }
}
