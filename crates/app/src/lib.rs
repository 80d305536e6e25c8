//! hifi's application layer: every operation and every view, as a library.
//!
//! A [`Project`] is opened from a directory (its repository, `hifi.toml`,
//! state store and [`Layout`]); each operation — cards, compose, deploy,
//! promote, approve, rollback, canary actions — and each view — board,
//! status, history, releases, a release's fidelity chain, diff — is one
//! method that takes an [`Actor`] and returns a typed outcome or a typed
//! [`Error`] carrying its hint as data. The CLI, the demo (and the HTTP API)
//! are shells over it: they parse, call, and render; none of them holds a
//! rule. An actor's [`Role`] is checked here, once, for every shell.
//!
//! Operations record desired state and its audit event in one transaction;
//! they never touch processes or traffic — the control plane does
//! ([`control`] starts and stops it).
//!
//! # Layout
//!
//! - `project.rs`: [`Project`], opening a project, [`Actor`] and the role
//!   check.
//! - [`cards`]: adding, moving and removing cards; the card list and the
//!   board.
//! - [`compose`]: composing an environment into a release.
//! - [`deploy`]: deploy, promote, rollback and canary actions; deployments
//!   and their events.
//! - [`releases`]: the releases, a release's fidelity chain, approvals and
//!   the diff of two environments.
//! - [`status`]: what runs where, and each environment's history.
//! - [`init`]: scaffolding `hifi.toml` and `.hifi/`.
//! - [`tokens`]: API tokens — creating, listing, revoking, authenticating.
//! - [`reports`]: outcomes as shells print them and the API returns them
//!   (a composition's report).
//! - [`manifests`]: the Kubernetes objects of an environment, and the Role
//!   hifi needs there.
//! - [`control`]: the control plane's lock, starting it in the foreground,
//!   and stopping what runs.
//! - [`state`]: a lost state noticed, the rolling backups, restoring one.
//! - [`error`]: [`Error`] and [`ErrorKind`].
//!
//! A new HTTP handler calls one of these methods; a new operation is a
//! method here plus a line in each shell.

pub mod cards;
pub mod compose;
pub mod control;
pub mod deploy;
pub mod error;
pub mod init;
pub mod manifests;
mod project;
pub mod releases;
pub mod reports;
pub mod state;
pub mod status;
pub mod tokens;

pub use error::{BadConfig, Error, ErrorKind, Regression, Result};
pub use hifi_controller::PassHook;
pub use hifi_core::{Layout, Role};
pub use project::{Actor, Project, now_ms};
