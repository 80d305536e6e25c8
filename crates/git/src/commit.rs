//! Commits: reading their dates and trees, and writing reproducible ones.
//!
//! hifi's commits have a fixed identity (`hifi <hifi@localhost>`) and a date
//! taken from their inputs rather than the clock, so composing the same
//! branches twice yields the same commit id and an unchanged environment
//! branch.

use std::fmt;

use crate::command::Output;
use crate::{Error, Oid, Repo, Result};

/// The author and committer of every commit hifi writes.
const IDENTITY_NAME: &str = "hifi";
const IDENTITY_EMAIL: &str = "hifi@localhost";

/// A commit timestamp as git stores it: seconds since the epoch and the
/// author's UTC offset. Orders by instant first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitDate {
    seconds: i64,
    offset_minutes: i32,
}

impl CommitDate {
    /// A date from Unix seconds and a UTC offset in minutes (east positive).
    pub fn new(seconds: i64, offset_minutes: i32) -> CommitDate {
        CommitDate {
            seconds,
            offset_minutes,
        }
    }

    /// Seconds since the Unix epoch.
    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    /// Offset from UTC in minutes, east positive.
    pub fn offset_minutes(&self) -> i32 {
        self.offset_minutes
    }

    /// Parses git's raw format, `<seconds> <+|-><hhmm>`.
    fn parse_raw(seconds: &str, offset: &str) -> Option<CommitDate> {
        let seconds = seconds.parse().ok()?;
        let (sign, digits) = match offset.as_bytes().first()? {
            b'+' => (1, &offset[1..]),
            b'-' => (-1, &offset[1..]),
            _ => return None,
        };
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i32 = digits[..2].parse().ok()?;
        let minutes: i32 = digits[2..].parse().ok()?;
        Some(CommitDate::new(seconds, sign * (hours * 60 + minutes)))
    }
}

impl fmt::Display for CommitDate {
    /// Git's raw format, as accepted by `GIT_COMMITTER_DATE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let offset = self.offset_minutes.unsigned_abs();
        write!(
            f,
            "{} {sign}{:02}{:02}",
            self.seconds,
            offset / 60,
            offset % 60
        )
    }
}

/// The parts of a commit that composition needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit itself (tags peeled).
    pub id: Oid,
    /// Its root tree.
    pub tree: Oid,
    /// Its committer date.
    pub committer_date: CommitDate,
}

impl Repo {
    /// Writes a commit of `tree` with `parents`, authored and committed by
    /// `hifi <hifi@localhost>` at `date`; the same arguments always give the
    /// same id. The commit is not signed, whatever `commit.gpgSign` says.
    pub fn commit_tree(
        &self,
        tree: &Oid,
        parents: &[Oid],
        message: &str,
        date: &CommitDate,
    ) -> Result<Oid> {
        let date = date.to_string();
        let mut git = self
            .git()
            // A non-UTF-8 commitEncoding would add a header and change the id.
            .config("i18n.commitEncoding=UTF-8")
            .args(["commit-tree", "--no-gpg-sign"]);
        for parent in parents {
            git = git.args(["-p", parent.as_str()]);
        }
        let output = git
            .args(["-m", message, "--end-of-options", tree.as_str()])
            .env("GIT_AUTHOR_NAME", IDENTITY_NAME)
            .env("GIT_AUTHOR_EMAIL", IDENTITY_EMAIL)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", IDENTITY_NAME)
            .env("GIT_COMMITTER_EMAIL", IDENTITY_EMAIL)
            .env("GIT_COMMITTER_DATE", &date)
            .run()?;
        single_oid(&output)
    }

    /// The committer date of `commit`.
    pub fn commit_date(&self, commit: &Oid) -> Result<CommitDate> {
        Ok(self.commit_infos(std::slice::from_ref(commit))?[0].committer_date)
    }

    /// Tree and committer date of each commit (tags are peeled), in one process.
    pub fn commit_infos(&self, commits: &[Oid]) -> Result<Vec<CommitInfo>> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let input: String = commits
            .iter()
            .map(|c| format!("{c}^{{commit}}\n"))
            .collect();
        let output = self
            .git()
            .args(["cat-file", "--batch"])
            .stdin(input.into_bytes())
            .run()?;
        let mut rest = output.stdout.as_slice();
        commits
            .iter()
            .map(|commit| {
                let (header, after) =
                    split_line(rest).ok_or_else(|| output.unexpected("output ended early"))?;
                let mut fields = header.split(|b| *b == b' ');
                let (Some(id), Some(b"commit"), Some(size)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    return Err(Error::ObjectNotFound {
                        rev: commit.to_string(),
                        expected: "commit",
                    });
                };
                let id = Oid::from_git(id).ok_or_else(|| output.unexpected("bad object id"))?;
                let size: usize = std::str::from_utf8(size)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| output.unexpected("bad object size"))?;
                if after.len() < size + 1 {
                    return Err(output.unexpected("output ended inside a commit"));
                }
                let (body, after) = after.split_at(size);
                rest = &after[1..];
                parse_commit(id, body).ok_or_else(|| output.unexpected("unreadable commit header"))
            })
            .collect()
    }

    /// The root tree of a commit (or the tree itself, given a tree).
    pub fn tree_of(&self, commit: &Oid) -> Result<Oid> {
        let output = self
            .git()
            .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(format!("{commit}^{{tree}}"))
            .output()?;
        match output.status {
            Some(0) => single_oid(&output),
            Some(1) => Err(Error::ObjectNotFound {
                rev: commit.to_string(),
                expected: "commit or tree",
            }),
            _ => Err(output.into_error()),
        }
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &Oid, descendant: &Oid) -> Result<bool> {
        let output = self
            .git()
            .args(["merge-base", "--is-ancestor", "--end-of-options"])
            .args([ancestor.as_str(), descendant.as_str()])
            .output()?;
        match output.status {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(output.into_error()),
        }
    }

    /// How many commits are reachable from `until` but not from `since`
    /// (all of `until`'s history when `since` is `None`), like `git log since..until`.
    pub fn count_commits(&self, since: Option<&Oid>, until: &Oid) -> Result<u64> {
        let mut git = self
            .git()
            .args(["rev-list", "--count", "--end-of-options", until.as_str()]);
        if let Some(since) = since {
            git = git.arg(format!("^{since}"));
        }
        let output = git.run()?;
        std::str::from_utf8(&output.stdout)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| output.unexpected("expected a count"))
    }
}

/// Parses output that is exactly one object id.
pub(crate) fn single_oid(output: &Output) -> Result<Oid> {
    output
        .lines()
        .next()
        .and_then(Oid::from_git)
        .ok_or_else(|| output.unexpected("expected an object id"))
}

fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|b| *b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

fn parse_commit(id: Oid, body: &[u8]) -> Option<CommitInfo> {
    let mut tree = None;
    let mut committer_date = None;
    // Headers end at the first blank line; the message may contain anything.
    for line in body.split(|b| *b == b'\n').take_while(|l| !l.is_empty()) {
        if let Some(hex) = line.strip_prefix(b"tree ") {
            tree = Oid::from_git(hex);
        } else if let Some(ident) = line.strip_prefix(b"committer ") {
            let ident = std::str::from_utf8(ident).ok()?;
            let mut parts = ident.rsplitn(3, ' ');
            let (offset, seconds) = (parts.next()?, parts.next()?);
            committer_date = CommitDate::parse_raw(seconds, offset);
        }
    }
    Some(CommitInfo {
        id,
        tree: tree?,
        committer_date: committer_date?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_dates_round_trip() {
        for raw in ["1700000000 +0000", "1700000000 -0530", "0 +1400"] {
            let (s, o) = raw.split_once(' ').unwrap();
            assert_eq!(CommitDate::parse_raw(s, o).unwrap().to_string(), raw);
        }
        assert_eq!(
            CommitDate::parse_raw("1", "-0130")
                .unwrap()
                .offset_minutes(),
            -90
        );
        assert!(CommitDate::parse_raw("x", "+0000").is_none());
        assert!(CommitDate::parse_raw("1", "0000").is_none());
    }

    #[test]
    fn dates_order_by_instant() {
        assert!(CommitDate::new(2, -600) > CommitDate::new(1, 600));
    }
}
