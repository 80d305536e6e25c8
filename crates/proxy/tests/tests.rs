//! Integration tests of the proxy against real loopback backends.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod util;

mod admin;
mod canary;
mod drain;
mod errors;
mod health;
mod metrics;
mod protocol;
mod restart;
mod switching;
