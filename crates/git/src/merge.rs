//! Merging without a work tree.
//!
//! `git merge-tree --write-tree` performs a full `ort` merge (renames
//! included) entirely in the object database: it writes the result tree and
//! touches neither the index, the work tree nor any ref. Conflicts are
//! reported, never resolved.

use crate::commit::single_oid;
use crate::{Oid, Repo, Result};

/// The result of merging two commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The merge succeeded; `tree` holds the merged content.
    Clean {
        /// The merged root tree.
        tree: Oid,
    },
    /// The merge needs a person.
    Conflict {
        /// Paths with conflicts, sorted as git lists them.
        files: Vec<String>,
        /// Git's explanation, one message per line (`CONFLICT (content): ...`).
        messages: String,
    },
}

impl Repo {
    /// Merges `theirs` into `ours` (two commits) in memory and writes the
    /// merged tree, or reports the conflicts. No ref moves.
    pub fn merge(&self, ours: &Oid, theirs: &Oid) -> Result<MergeOutcome> {
        let output = self
            .git()
            .args(["merge-tree", "--write-tree", "-z", "--name-only"])
            .args(["--end-of-options", ours.as_str(), theirs.as_str()])
            .output()?;
        match output.status {
            Some(0) => Ok(MergeOutcome::Clean {
                tree: single_oid_record(&output)?,
            }),
            Some(1) => {
                let mut records = output.records().skip(1);
                let files = records
                    .by_ref()
                    .take_while(|r| !r.is_empty())
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .collect();
                let messages = parse_messages(records)
                    .ok_or_else(|| output.unexpected("unreadable conflict messages"))?;
                Ok(MergeOutcome::Conflict { files, messages })
            }
            _ => Err(output.into_error()),
        }
    }

    /// The paths that `to` changed since it forked from `from` (against their
    /// merge base, like `git diff --name-only from...to`), renames counted as
    /// a deletion plus an addition. Used to find which earlier branch touched
    /// the files of a conflict.
    pub fn changed_files(&self, from: &Oid, to: &Oid) -> Result<Vec<String>> {
        let base = self
            .git()
            .args(["merge-base", "--end-of-options", from.as_str(), to.as_str()])
            .output()?;
        let output = match base.status {
            Some(0) => {
                let base = single_oid(&base)?;
                self.git()
                    .args(["diff-tree", "-r", "-z", "--name-only", "--no-renames"])
                    .args(["--end-of-options", base.as_str(), to.as_str()])
                    .run()?
            }
            // Unrelated histories: everything in `to` is new.
            Some(1) => self
                .git()
                .args(["ls-tree", "-r", "-z", "--name-only", "--end-of-options"])
                .arg(to.as_str())
                .run()?,
            _ => return Err(base.into_error()),
        };
        Ok(output
            .records()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect())
    }
}

fn single_oid_record(output: &crate::command::Output) -> Result<Oid> {
    output
        .records()
        .next()
        .and_then(Oid::from_git)
        .ok_or_else(|| output.unexpected("expected a tree id"))
}

/// Parses the `-z` informational section: for each message, a path count,
/// that many paths, a short type, and the message text.
fn parse_messages<'a>(mut records: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    let mut messages = String::new();
    while let Some(count) = records.next() {
        let count: usize = std::str::from_utf8(count).ok()?.parse().ok()?;
        records.by_ref().take(count).for_each(drop);
        let kind = records.next()?;
        let text = String::from_utf8_lossy(records.next()?);
        // Routine notes would bury the conflicts a person has to resolve.
        if kind != b"Auto-merging" {
            messages.push_str(text.trim_end());
            messages.push('\n');
        }
    }
    Some(messages.trim_end().to_owned())
}
