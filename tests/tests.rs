//! End-to-end tests of the `hifi` binary: real git repositories in temp
//! dirs, the real binary, its exit codes, stdout, stderr and `--json`.
//!
//! One test binary. Its modules live in `e2e/` rather than beside this
//! file because Cargo builds every `tests/*.rs` as a test binary of its own.

mod e2e;
