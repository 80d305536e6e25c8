//! The application layer on real projects (a git repository in a temp dir,
//! a real state database): roles checked for every shell, refusals that
//! carry their facts as data, and nothing changed by what is refused.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod errors;
mod hotfix;
mod roles;
mod team;
mod util;
mod windows;
