//! The modules of the end-to-end suite, one per area of behaviour; `util`
//! holds `TestProject` and the helpers every module shares.

mod util;

mod artifacts;
mod cards;
mod compose;
mod concurrency;
mod config;
mod conflict;
mod diff;
mod fidelity;
mod init;
mod json;
mod repository;
