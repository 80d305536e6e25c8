//! Integration tests of the proxy against real loopback backends.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod util;

mod admin;
mod attribution;
mod canary;
mod drain;
mod errors;
mod framing;
mod grpc;
mod health;
mod limits;
mod metrics;
mod protocol;
mod restart;
mod status;
mod switching;
mod websocket;
