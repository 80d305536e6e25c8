//! Opening a repository.

use std::path::{Path, PathBuf};

use crate::command::GitCommand;
use crate::{Error, Result, refname};

/// The oldest git with `merge-tree --write-tree`.
const REQUIRED_GIT: (u32, u32) = (2, 38);

/// A git repository with a work tree, driven through the `git` CLI.
///
/// A `Repo` only ever writes objects and the refs it is asked to update: it
/// never changes the user's work tree, index, `HEAD`, or a branch checked
/// out in any work tree.
#[derive(Clone, Debug)]
pub struct Repo {
    root: PathBuf,
    git_dir: PathBuf,
}

impl Repo {
    /// Opens the repository containing `path` (any directory inside its work
    /// tree) and checks that the installed git is recent enough.
    pub fn open(path: &Path) -> Result<Repo> {
        if !path.is_dir() {
            return Err(Error::NotARepository {
                path: path.to_owned(),
            });
        }
        check_git_version(path)?;
        let output = GitCommand::new(path)
            .args(["rev-parse", "--show-toplevel", "--absolute-git-dir"])
            .output()?;
        if output.status != Some(0) {
            let path = path.to_owned();
            return Err(if output.stderr.contains("not a git repository") {
                Error::NotARepository { path }
            } else if output.stderr.contains("must be run in a work tree") {
                Error::NoWorkTree { path }
            } else {
                output.into_error()
            });
        }
        let mut lines = output.lines().map(bytes_to_path);
        match (lines.next(), lines.next()) {
            (Some(root), Some(git_dir)) => Ok(Repo { root, git_dir }),
            _ => Err(output.unexpected("expected the top level and the git directory")),
        }
    }

    /// The top-level directory of the work tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The repository's git directory (`.git`, or a work tree's own directory).
    pub(crate) fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// Whether any ref (or `HEAD`) points at a commit; `false` right after `git init`.
    pub fn has_commits(&self) -> Result<bool> {
        let output = self.git().args(["rev-list", "-n", "1", "--all"]).run()?;
        Ok(!output.stdout.is_empty())
    }

    /// The branch `HEAD` points at (even before its first commit), or
    /// `None` when `HEAD` is detached.
    pub fn current_branch(&self) -> Result<Option<String>> {
        let output = self
            .git()
            .args(["symbolic-ref", "--quiet", "--short", "HEAD"])
            .output()?;
        if output.status != Some(0) {
            return Ok(None);
        }
        let name = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Ok((!name.is_empty()).then_some(name))
    }

    /// Checks a short branch name with the rules of `git check-ref-format
    /// --branch`, and refuses anything that could be read as an option.
    pub fn validate_branch_name(name: &str) -> Result<()> {
        refname::check_branch(name).map_err(|reason| Error::InvalidBranchName {
            name: name.to_owned(),
            reason,
        })
    }

    /// Checks a full ref name (`refs/...`) with the rules of `git check-ref-format`.
    pub fn validate_ref_name(full_ref: &str) -> Result<()> {
        refname::check_full(full_ref).map_err(|reason| Error::InvalidRefName {
            name: full_ref.to_owned(),
            reason,
        })
    }

    /// A git command run at the top level of this repository.
    pub(crate) fn git(&self) -> GitCommand {
        GitCommand::new(&self.root)
    }
}

fn check_git_version(dir: &Path) -> Result<()> {
    let output = GitCommand::new(dir).arg("version").run()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let found = text
        .trim()
        .strip_prefix("git version ")
        .unwrap_or(text.trim())
        .to_owned();
    let mut numbers = found.split(['.', ' ']).map(|n| n.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= REQUIRED_GIT => Ok(()),
        (Some(_), Some(_)) => Err(Error::GitTooOld {
            found,
            required: "2.38",
        }),
        _ => Err(output.unexpected(format!("cannot read git version {found:?}"))),
    }
}

#[cfg(unix)]
pub(crate) fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
pub(crate) fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}
