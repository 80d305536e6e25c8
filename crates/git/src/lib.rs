//! hifi's git layer: compose environment branches without touching the
//! user's work tree, index or current branch.
//!
//! An environment branch (`hifi/env/<env>`) is the base branch's tip plus the
//! branches of the cards that reached the environment's stage, merged in a
//! fixed order. This crate drives the `git` CLI (2.38 or newer, for
//! `merge-tree --write-tree`) rather than a git library, so hifi sees exactly
//! what the user's own git sees: the same configuration, object format and
//! merge machinery. Merges happen in the object database; the only writes are
//! new objects and the refs a caller explicitly updates, compare-and-swap.
//!
//! No string from a user reaches git where it could be read as an option:
//! names are validated first ([`Repo::validate_branch_name`]) and arguments
//! follow `--end-of-options`. Commits written here are reproducible (fixed
//! identity, dates taken from their inputs), so recomposing unchanged inputs
//! yields the same commit and leaves the environment branch where it is.
//!
//! # Layout
//!
//! - `repo` — [`Repo::open`]: finding the top level, checking the git version.
//! - `refs` — exact, batched ref reads; compare-and-swap [`Repo::update_ref`].
//! - `commit` — reproducible [`Repo::commit_tree`], [`CommitDate`], ancestry.
//! - `merge` — in-memory [`Repo::merge`] and [`Repo::changed_files`].
//! - `tree` — service versions ([`Repo::subtree`]) and [`Repo::export`].
//! - `compose` — base plus branches into one commit ([`Repo::compose`]).
//! - `refname` — `git check-ref-format` rules, applied before git runs.
//! - `command` — the one place a `git` process is started.
//! - `oid`, `error` — [`Oid`] and [`Error`].
//!
//! # Limits
//!
//! Paths that are not UTF-8 are reported lossily. A service directory that is
//! a submodule is not a directory here. Each call starts one or two short git
//! processes; batch calls ([`Repo::resolve_branches`], [`Repo::subtrees`],
//! [`Repo::commit_infos`]) keep that constant when asking about many things.

mod command;
mod commit;
mod compose;
mod error;
mod merge;
mod oid;
mod refname;
mod refs;
mod repo;
mod tree;

pub use commit::{CommitDate, CommitInfo};
pub use compose::{Composition, Ingredient};
pub use error::{Error, Result};
pub use merge::MergeOutcome;
pub use oid::Oid;
pub use repo::Repo;
