//! Integration tests of the runtimes: the local runtime against real
//! processes and sockets (helpers in `util`), the Docker runtime against a
//! real engine (`docker`, skipped loudly when none answers), the Kubernetes
//! runtime against a fake API server (`kubernetes`), and the contract every
//! runtime keeps, run against all three (`contract`).

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod util;

mod adopt;
mod contract;
mod docker;
mod health;
mod kubernetes;
mod probe;
mod stop;
