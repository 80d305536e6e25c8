//! The crate's one error type.
//!
//! Every variant says what went wrong in terms a user can act on; failures of
//! git itself keep the command line and git's own stderr, because git's
//! message usually names the fix.

use std::io;
use std::path::PathBuf;

use crate::Oid;

/// Everything that can go wrong in the git layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `git` itself could not be started.
    #[error("could not run `git`: {source} (is git 2.38 or newer installed and on PATH?)")]
    GitUnavailable {
        /// Why the process could not be spawned.
        #[source]
        source: io::Error,
    },

    /// The installed git lacks a feature hifi needs.
    #[error("git {found} is too old: hifi needs git {required} or newer")]
    GitTooOld {
        /// The version `git version` reported.
        found: String,
        /// The oldest version that works.
        required: &'static str,
    },

    /// The directory is not inside a git work tree.
    #[error("{} is not inside a git repository; run hifi from a clone of your project", path.display())]
    NotARepository {
        /// The directory that was searched from.
        path: PathBuf,
    },

    /// The directory belongs to a repository but not to a work tree (a bare
    /// repository, or inside `.git`).
    #[error("{} is not inside a work tree; run hifi from a clone with a checkout", path.display())]
    NoWorkTree {
        /// The directory that was searched from.
        path: PathBuf,
    },

    /// The repository has no commits at all, so there is nothing to compose.
    #[error("the repository has no commits yet; commit something to the base branch first")]
    NoCommits,

    /// A branch that must exist does not.
    #[error("branch {name:?} does not exist")]
    BranchNotFound {
        /// The short branch name, without `refs/heads/`.
        name: String,
    },

    /// A branch name that git would refuse, or that could be mistaken for an option.
    #[error("invalid branch name {name:?}: {reason}")]
    InvalidBranchName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A full ref name (`refs/...`) that git would refuse.
    #[error("invalid ref name {name:?}: {reason}")]
    InvalidRefName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A path inside a tree that cannot be looked up safely.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A string that is not a full hexadecimal object id.
    #[error("{value:?} is not a full object id (40 or 64 hexadecimal digits)")]
    InvalidOid {
        /// The string as given.
        value: String,
    },

    /// An object that should exist is missing, or has the wrong type.
    #[error("{rev} is not a {expected} in this repository")]
    ObjectNotFound {
        /// What was looked up (an object id, possibly with a suffix like `:path`).
        rev: String,
        /// The object type that was expected.
        expected: &'static str,
    },

    /// A path inside a tree exists but is a file (or submodule), not a directory.
    #[error("{path:?} in {tree} is not a directory")]
    NotADirectory {
        /// The tree-ish that was searched.
        tree: Oid,
        /// The path inside it.
        path: String,
    },

    /// An export would mix old files with new ones.
    #[error("export destination {} already exists and is not an empty directory", path.display())]
    DestinationNotEmpty {
        /// The destination directory.
        path: PathBuf,
    },

    /// A compare-and-swap ref update lost a race: someone else moved the ref.
    #[error(
        "{name} was moved by someone else (expected {}, found {}); re-read it and retry",
        describe(.expected.as_ref()),
        describe(.found.as_ref())
    )]
    RefMoved {
        /// The full ref name.
        name: String,
        /// The value the caller expected (`None`: must not exist).
        expected: Option<Oid>,
        /// The value actually found (`None`: it does not exist).
        found: Option<Oid>,
    },

    /// Moving this ref would change a branch someone has checked out, behind
    /// the back of their index and work tree.
    #[error("refusing to update {name}: it is checked out in {}; switch that work tree to another branch", worktree.display())]
    RefCheckedOut {
        /// The full ref name.
        name: String,
        /// The work tree that has it checked out.
        worktree: PathBuf,
    },

    /// A git command failed.
    #[error("`git {args}` failed ({}): {stderr}", describe_status(*.status))]
    Git {
        /// The arguments after `git -C <root>`, space separated.
        args: String,
        /// The exit code, or `None` when killed by a signal.
        status: Option<i32>,
        /// What git printed on stderr, trimmed.
        stderr: String,
    },

    /// A git command succeeded but printed something this crate does not understand.
    #[error("unexpected output from `git {args}`: {detail}")]
    UnexpectedOutput {
        /// The arguments after `git -C <root>`, space separated.
        args: String,
        /// What did not parse.
        detail: String,
    },

    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn describe(oid: Option<&Oid>) -> String {
    oid.map_or_else(|| "no ref".to_owned(), Oid::to_string)
}

fn describe_status(status: Option<i32>) -> String {
    status.map_or_else(
        || "killed by a signal".to_owned(),
        |code| format!("exit status {code}"),
    )
}
