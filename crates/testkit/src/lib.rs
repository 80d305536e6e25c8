//! Helpers shared by hifi's test suites, so each suite stops carrying its
//! own copy:
//!
//! - [`ports`]: one picker of free loopback ports for listeners a test
//!   starts (an environment's public port, a proxy's listener).
//! - [`config`]: one typed builder of `hifi.toml` text.
//! - [`kube`]: a fake Kubernetes API server on loopback, for the tests of
//!   the Kubernetes runtime.
//! - [`repo`]: git repositories for tests, without this machine's git
//!   configuration.
//! - [`skip`]: a test that cannot run here says so loudly, and fails
//!   instead where every part is required (CI).
//!
//! It depends on no hifi crate, so every crate of the workspace can take it
//! as a dev-dependency without a cycle.

pub mod config;
pub mod kube;
pub mod ports;
pub mod repo;
pub mod skip;

pub use config::{Config, Env, Service};
pub use ports::loopback_port;
pub use skip::skip;
