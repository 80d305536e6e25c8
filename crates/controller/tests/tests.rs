//! In-process tests of the controller: a real git project with python3
//! services, the real proxy on a unix socket, the real local runtime, and a
//! manual clock, so 30-second canary steps and soaks pass in milliseconds.
//!
//! One test binary (`autotests = false`); the other files of this directory
//! are its modules:
//!
//! - `util`: the project, the in-process proxy and controller, users, polling.
//! - `canary`: step timing, extension, abort on figures, pause.
//! - `verify`: verification after soak, by the clock.
//! - `gate`: the fidelity gate, checked again by the controller.
//! - `shutdown`: every process stopped when `run` returns.
//! - `kubernetes`: Kubernetes environments against a fake API server.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod canary;
mod gate;
mod kubernetes;
mod shutdown;
mod util;
mod verify;
