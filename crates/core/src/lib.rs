//! The domain of hifi: what a project, a card, an environment and a release
//! are, and the rules that bind them. Everything here is pure: no files, no
//! processes, no clock. The store persists these types, the git layer builds
//! compositions from them, and the binary drives both.
//!
//! The key decision lives in [`fidelity`]: an environment that promotes from
//! another accepts only a release that was verified there, and the check is a
//! function of recorded facts, so every caller (the command that refuses, the
//! controller that checks again before traffic moves) applies the same rule.
//!
//! # Layout
//!
//! - [`config`]: `hifi.toml` parsed (`config/raw.rs`) and validated
//!   (`config/validate.rs`) into [`Config`]; errors carry the key and the
//!   source span so the binary can point at the line.
//! - [`duration`]: the `"30s"` / `"5m"` durations used in the config.
//! - [`workflow`]: stages of the card workflow and how a user may name them.
//! - [`card`]: cards and which environments include them.
//! - [`release`]: content-addressed releases and service versions.
//! - [`fidelity`]: the gate — may release R go live in environment E.
//! - [`deployment`]: the lifecycle of a deployment as a state machine.
//! - [`rollout`]: blue/green slots, their transitions, and the canary judge.
//! - [`diff`]: what differs between two environments.
//! - [`health`]: an instance's health as the controller records it.
//! - [`protocol`]: what a service's instances speak (HTTP/1.1, h2c, gRPC)
//!   and how a health answer in each is judged.
//! - [`clock`]: time, injected ([`clock::Clock`], [`clock::ManualClock`]).
//! - [`window`]: promotion windows (`Mon-Fri 09:00-16:00 Europe/Zurich`).
//! - [`event`]: the kinds of events in the audit log.
//! - [`access`]: roles and what they allow.
//! - [`token`]: API tokens — their secrets' shape and hashes.
//! - [`notify`]: which events a webhook receives (`deployment.*`).
//! - [`layout`]: every path of a project (`hifi.toml`, `.hifi/...`).
//! - `names`: the one way enums are stored and shown by name.
//! - `sql` (feature `sqlite`): these types as SQLite values, for the store.

pub mod access;
pub mod card;
pub mod clock;
pub mod config;
pub mod deployment;
pub mod diff;
pub mod duration;
pub mod event;
pub mod fidelity;
pub mod health;
pub mod layout;
mod names;
pub mod notify;
pub mod protocol;
pub mod release;
pub mod rollout;
#[cfg(feature = "sqlite")]
mod sql;
pub mod token;
pub mod window;
pub mod workflow;

pub use access::{Action, Role};
pub use card::{Card, CardId};
pub use config::{
    Canary, Config, ConfigError, Environment, Expose, Kubernetes, Notify, NotifyFormat, Origin,
    Registry, Resources, RuntimeKind, Server, Service, Strategy, Tls, UserKey,
};
pub use deployment::{DeploymentState, Kind, Request};
pub use event::EventKind;
pub use health::Health;
pub use layout::Layout;
pub use protocol::Protocol;
pub use release::{Release, ReleaseId, ServiceVersion};
pub use rollout::{Routing, Slot, Verdict};
pub use workflow::{Stage, Workflow};

/// Checks a name used for services and environments: lowercase letters,
/// digits and dashes, starting with a letter. Such names are safe in branch
/// names, file paths and (upper-cased) environment variable names.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && !name.ends_with('-')
        && name.len() <= 40
}
