//! An instance's working directory, made from its artifact: the same tree
//! of directories, each file a hard link to the artifact's (a copy where the
//! file system cannot link), each symlink recreated. Linking costs no space
//! and little time, and what the instance creates where it runs (caches,
//! `__pycache__`, scratch files) stays out of the artifact, whose digest is
//! checked at every start.

use std::fs;
use std::io;
use std::path::Path;

/// Makes `to` afresh as a linked copy of `from`.
pub fn link_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::remove_dir_all(to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    copy_dir(from, to)
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&source, &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
        } else if fs::hard_link(&source, &target).is_err() {
            fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_made_in_the_copy_stay_out_of_the_artifact() {
        let artifact = tempfile::tempdir().unwrap();
        std::fs::create_dir(artifact.path().join("lib")).unwrap();
        std::fs::write(artifact.path().join("lib/a.py"), "a\n").unwrap();
        std::os::unix::fs::symlink("lib/a.py", artifact.path().join("main.py")).unwrap();
        let work = tempfile::tempdir().unwrap();
        let to = work.path().join("catalog.0");
        std::fs::create_dir(&to).unwrap();
        std::fs::write(to.join("stale"), "from the last run\n").unwrap();

        link_copy(artifact.path(), &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("main.py")).unwrap(), "a\n");
        assert!(!to.join("stale").exists(), "made afresh");
        std::fs::create_dir(to.join("lib/__pycache__")).unwrap();
        assert!(!artifact.path().join("lib/__pycache__").exists());
    }
}
