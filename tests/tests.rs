//! End-to-end tests of the `hifi` binary: real git repositories in temp
//! dirs, the real binary, its exit codes, stdout, stderr and `--json`.
//!
//! One test binary. Its modules live in `e2e/` rather than beside this
//! file because Cargo builds every `tests/*.rs` as a test binary of its own.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod e2e;
