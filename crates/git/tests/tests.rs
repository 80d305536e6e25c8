//! Integration tests against real git repositories in temporary directories.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod util;

mod commit;
mod compose;
mod merge;
mod open;
mod refs;
mod tree;
mod untouched;
