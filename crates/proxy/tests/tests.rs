//! Integration tests of the proxy against real loopback backends.

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
