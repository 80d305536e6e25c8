//! Integration tests against real git repositories in temporary directories.

mod util;

mod commit;
mod compose;
mod merge;
mod open;
mod refs;
mod tree;
mod untouched;
