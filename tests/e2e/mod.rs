//! The modules of the end-to-end suite, one per area of behaviour; `util`
//! holds `TestProject` and the helpers every module shares.

mod util;

// The control plane: a running hifi, its proxy and services, under load.
mod cluster;
mod control_bluegreen;
mod control_canary;
mod control_crash;
mod control_errors;
mod load;
mod protocols;
mod remote;

mod artifacts;
mod cards;
mod compose;
mod concurrency;
mod config;
mod conflict;
mod diff;
mod docker;
mod fidelity;
mod hotfix;
mod init;
mod json;
mod repository;
mod state;
