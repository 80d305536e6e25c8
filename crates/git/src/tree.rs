//! Reading directories of a tree: service versions and their files.
//!
//! A service's version is the id of its directory's tree, so an unchanged
//! directory keeps its version across commits whatever happens elsewhere.
//! Export goes through a throw-away index file inside the git directory (as
//! `git stash` does), never the user's index.

use std::path::{Path, PathBuf};

use crate::{Error, Oid, Repo, Result};

impl Repo {
    /// The tree id of directory `path` in `tree_ish` (a commit or a tree);
    /// `None` when nothing exists at `path`, [`Error::NotADirectory`] when a
    /// file does. `""` or `"."` is the root.
    pub fn subtree(&self, tree_ish: &Oid, path: &str) -> Result<Option<Oid>> {
        Ok(self.subtrees(tree_ish, &[path])?.pop().flatten())
    }

    /// [`Repo::subtree`] for many paths at once, in one git process.
    pub fn subtrees(&self, tree_ish: &Oid, paths: &[&str]) -> Result<Vec<Option<Oid>>> {
        let paths = paths
            .iter()
            .map(|p| normalize(p))
            .collect::<Result<Vec<_>>>()?;
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        // The first query checks that `tree_ish` itself exists, so that a
        // bad id is an error rather than every path "missing".
        let mut input = format!("{tree_ish}^{{tree}}\n");
        for path in &paths {
            input.push_str(&format!("{tree_ish}:{path}\n"));
        }
        let output = self
            .git()
            .args(["cat-file", "--batch-check=%(objectname) %(objecttype)"])
            .stdin(input.into_bytes())
            .run()?;
        let mut lines = output.lines();
        match lines.next() {
            Some(line) if line.ends_with(b" tree") => {}
            _ => {
                return Err(Error::ObjectNotFound {
                    rev: tree_ish.to_string(),
                    expected: "commit or tree",
                });
            }
        }
        paths
            .into_iter()
            .map(|path| {
                let line = lines
                    .next()
                    .ok_or_else(|| output.unexpected("output ended early"))?;
                // Missing objects echo the query back; a path may contain spaces.
                if line.ends_with(b" missing") || line.ends_with(b" ambiguous") {
                    return Ok(None);
                }
                match line.split_at_checked(line.len().saturating_sub(5)) {
                    Some((oid, b" tree")) => Oid::from_git(oid)
                        .map(Some)
                        .ok_or_else(|| output.unexpected("bad object id")),
                    _ => Err(Error::NotADirectory {
                        tree: tree_ish.clone(),
                        path,
                    }),
                }
            })
            .collect()
    }

    /// Writes the files of directory `path` of `tree_ish` into `dest` (created
    /// if missing, refused unless empty), as a checkout would: executable bits
    /// and symlinks kept, `.gitattributes` conversions applied.
    pub fn export(&self, tree_ish: &Oid, path: &str, dest: &Path) -> Result<()> {
        let tree = self
            .subtree(tree_ish, path)?
            .ok_or_else(|| Error::ObjectNotFound {
                rev: format!("{tree_ish}:{path}"),
                expected: "directory",
            })?;
        let dest = prepare_destination(dest)?;
        let scratch = ScratchDir::create(self.git_dir())?;
        let index = scratch.path.join("index");
        // Sparse settings would mark entries skip-worktree and silently drop them.
        let git = || {
            self.git()
                .config("core.sparseCheckout=false")
                .config("index.sparse=false")
                .env("GIT_INDEX_FILE", &index)
        };
        git()
            .args(["read-tree", "--end-of-options", tree.as_str()])
            .run()?;
        let mut prefix = std::ffi::OsString::from("--prefix=");
        prefix.push(dest.as_os_str());
        prefix.push("/");
        git().args(["checkout-index", "--all"]).arg(prefix).run()?;
        Ok(())
    }
}

/// Normalizes a repository path: no leading `./`, no empty or `.` parts.
fn normalize(path: &str) -> Result<String> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.contains(['\n', '\0']) {
        return Err(invalid("it cannot contain newlines or NUL bytes"));
    }
    if path.starts_with('/') {
        return Err(invalid("it must be relative to the repository root"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("it cannot contain '..'")),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Creates `dest` if needed and returns it absolute (git runs elsewhere).
fn prepare_destination(dest: &Path) -> Result<PathBuf> {
    let io = |source| Error::Io {
        path: dest.to_owned(),
        source,
    };
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::DestinationNotEmpty {
                    path: dest.to_owned(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(io)?;
        }
        Err(e) => return Err(io(e)),
    }
    dest.canonicalize().map_err(io)
}

/// A private directory under the git directory, removed on drop.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create(git_dir: &Path) -> Result<ScratchDir> {
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // `create_dir` fails if the name is taken, so concurrent exports
        // (threads or processes) each get their own directory.
        let mut attempt = 0u32;
        loop {
            let path = git_dir.join(format!("hifi-export.{pid}.{nanos}.{attempt}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1;
                }
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove scratch directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("").unwrap(), "");
        assert_eq!(normalize(".").unwrap(), "");
        assert_eq!(normalize("./services//pay/").unwrap(), "services/pay");
        assert!(normalize("../x").is_err());
        assert!(normalize("/etc").is_err());
        assert!(normalize("a\nb").is_err());
    }
}
