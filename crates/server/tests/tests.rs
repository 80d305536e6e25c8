//! The team server over real HTTP on 127.0.0.1 port 0: a real project (a
//! git repository in a temp dir, a real state database), real tokens, and
//! for webhooks real receivers on loopback.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod api;
mod dashboard;
mod util;
mod webhooks;
