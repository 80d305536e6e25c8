//! Reading and updating refs.
//!
//! Reads go through one `git for-each-ref` whatever the number of names, and
//! match names exactly (no DWIM: `x` never resolves to `refs/tags/x`).
//! Updates are compare-and-swap, so two hifi processes composing the same
//! environment cannot silently overwrite each other.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::repo::bytes_to_path;
use crate::{Error, Oid, Repo, Result};

/// What a ref points at.
struct RefTarget {
    oid: Oid,
    is_commit: bool,
}

impl Repo {
    /// Resolves short branch names (`refs/heads/<name>`) to commits with one
    /// git process; a missing branch gives `None`, in the order of `names`.
    pub fn resolve_branches(&self, names: &[&str]) -> Result<Vec<Option<Oid>>> {
        for name in names {
            Repo::validate_branch_name(name)?;
        }
        let full: Vec<String> = names.iter().map(|n| format!("refs/heads/{n}")).collect();
        let mut found = self.read_refs(&full)?;
        full.iter()
            .zip(names)
            .map(|(full, name)| match found.remove(full) {
                Some(RefTarget {
                    is_commit: false, ..
                }) => Err(Error::ObjectNotFound {
                    rev: format!("branch {name}"),
                    expected: "commit",
                }),
                target => Ok(target.map(|t| t.oid)),
            })
            .collect()
    }

    /// Resolves one branch that must exist; distinguishes a repository with no
    /// commits at all from a missing branch, because the fixes differ.
    pub fn resolve_branch(&self, name: &str) -> Result<Oid> {
        match self.resolve_branches(&[name])?.pop().flatten() {
            Some(oid) => Ok(oid),
            None if !self.has_commits()? => Err(Error::NoCommits),
            None => Err(Error::BranchNotFound {
                name: name.to_owned(),
            }),
        }
    }

    /// The object a full ref (`refs/...`) points at, `None` if it does not exist.
    pub fn read_ref(&self, full_ref: &str) -> Result<Option<Oid>> {
        Repo::validate_ref_name(full_ref)?;
        let full = [full_ref.to_owned()];
        Ok(self.read_refs(&full)?.remove(full_ref).map(|t| t.oid))
    }

    /// Points `full_ref` at `new` if it still points at `expected_old`
    /// (`None`: only if it does not exist yet), recording `reason` in its reflog.
    ///
    /// Fails with [`Error::RefMoved`] when the ref changed underneath, and with
    /// [`Error::RefCheckedOut`] rather than move a branch that a work tree has
    /// checked out (that would leave its index showing phantom changes).
    pub fn update_ref(
        &self,
        full_ref: &str,
        new: &Oid,
        expected_old: Option<&Oid>,
        reason: &str,
    ) -> Result<()> {
        Repo::validate_ref_name(full_ref)?;
        if let Some(worktree) = self.checked_out_in(full_ref)? {
            return Err(Error::RefCheckedOut {
                name: full_ref.to_owned(),
                worktree,
            });
        }
        // An empty old value is git's spelling of "must not exist" for any hash length.
        let old = expected_old.map_or("", Oid::as_str);
        let output = self
            .git()
            .args([
                "update-ref",
                "--create-reflog",
                "-m",
                reason,
                "--end-of-options",
            ])
            .args([full_ref, new.as_str(), old])
            .output()?;
        if output.status == Some(0) {
            return Ok(());
        }
        let found = self.read_ref(full_ref)?;
        if found.as_ref() != expected_old {
            return Err(Error::RefMoved {
                name: full_ref.to_owned(),
                expected: expected_old.cloned(),
                found,
            });
        }
        Err(output.into_error())
    }

    /// The work tree that has `full_ref` checked out, if any.
    fn checked_out_in(&self, full_ref: &str) -> Result<Option<PathBuf>> {
        let output = self
            .git()
            .args(["worktree", "list", "--porcelain", "-z"])
            .run()?;
        let mut worktree = None;
        for record in output.records() {
            if let Some(path) = record.strip_prefix(b"worktree ") {
                worktree = Some(bytes_to_path(path));
            } else if record.strip_prefix(b"branch ") == Some(full_ref.as_bytes()) {
                return Ok(worktree.or_else(|| Some(self.root().to_owned())));
            }
        }
        Ok(None)
    }

    /// Reads validated full ref names exactly, in one process.
    fn read_refs(&self, full: &[String]) -> Result<HashMap<String, RefTarget>> {
        if full.is_empty() {
            return Ok(HashMap::new());
        }
        let output = self
            .git()
            .args([
                "for-each-ref",
                "--format=%(refname)%00%(objectname)%00%(objecttype)",
                "--end-of-options",
            ])
            .args(full)
            .run()?;
        let mut found = HashMap::new();
        for line in output.lines() {
            let mut fields = line.split(|b| *b == 0);
            let (Some(name), Some(oid), Some(kind)) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(output.unexpected("a ref line without three fields"));
            };
            let name = String::from_utf8_lossy(name);
            // Patterns also match refs below them (`refs/heads/a/b` for `a`).
            if !full.iter().any(|f| *f == name) {
                continue;
            }
            let oid = Oid::from_git(oid)
                .ok_or_else(|| output.unexpected(format!("bad object id for {name}")))?;
            found.insert(
                name.into_owned(),
                RefTarget {
                    oid,
                    is_commit: kind == b"commit",
                },
            );
        }
        Ok(found)
    }
}
