//! Artifacts: the built output of one service version, kept under
//! `.hifi/artifacts/<service>/<version>/` and reused by every release that
//! has that version. A build runs in a fresh export of the service's
//! directory at that version — never in the user's work tree — so what is
//! built is exactly what was composed.
//!
//! A build happens in a private scratch directory and is renamed into place
//! only when it succeeded, so a killed or failed build never leaves a
//! half-built artifact that a later release would reuse. A failed build's
//! log is kept beside the artifacts as `<version>.failed.log`.
//!
//! Every artifact has a content [`digest`], taken when it is built and
//! recorded with each release that uses it; [`Artifacts::verify`] checks it
//! before every start, so bytes changed after a release was verified are
//! refused, never run.
//!
//! # Layout
//!
//! One module: [`Artifacts`] (where artifacts live, whether one exists,
//! building it, checking it), [`digest`] and [`Error`].

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use hifi_core::Service;
use hifi_git::{Oid, Repo};
use sha2::{Digest, Sha256};

/// What can go wrong while making an artifact.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The build command failed.
    #[error(
        "the build of service {service} (version {version}) failed: {status}\n  log: {}{tail}",
        log.display()
    )]
    BuildFailed {
        /// The service.
        service: String,
        /// Short version.
        version: String,
        /// How it failed.
        status: String,
        /// Where its log was kept.
        log: PathBuf,
        /// Its last lines, ready to print.
        tail: String,
    },
    /// A symlink in the service's tree points outside its directory: the
    /// artifact would run something that is not part of the release.
    #[error(
        "service {service} (version {version}) has a symlink `{link}` -> `{target}` that leads outside its directory; an artifact holds everything it runs, so hifi refuses it"
    )]
    EscapingLink {
        /// The service.
        service: String,
        /// Short version.
        version: String,
        /// The link, relative to the service's directory.
        link: String,
        /// Where it points.
        target: String,
    },
    /// The artifact's content is not what was recorded when it was built.
    #[error(transparent)]
    Changed(Box<Changed>),
    /// Exporting the service's files failed.
    #[error(transparent)]
    Git(#[from] hifi_git::Error),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
}

/// An artifact whose content is not what was recorded when it was built.
#[derive(Debug, thiserror::Error)]
#[error(
    "the artifact of service {service} (version {version}) in {} changed after it was built: it was recorded as {expected}, it is now {found}; hifi runs only the bytes that were verified",
    dir.display()
)]
pub struct Changed {
    /// The service.
    pub service: String,
    /// Short version.
    pub version: String,
    /// The artifact directory.
    pub dir: PathBuf,
    /// The digest recorded when it was built.
    pub expected: String,
    /// Its digest now.
    pub found: String,
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io<T>(path: &Path, result: std::io::Result<T>) -> Result<T> {
    result.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Written last into a finished artifact; its presence means "complete".
const MARKER: &str = ".hifi-artifact";
/// The build's combined stdout and stderr, inside the artifact.
pub const BUILD_LOG: &str = ".hifi-build.log";

/// What [`Artifacts::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// The artifact existed; nothing ran.
    Reused,
    /// It was built now, taking this many milliseconds; its content digest.
    Built(u128, String),
}

/// The artifact directory of a project.
pub struct Artifacts {
    root: PathBuf,
}

impl Artifacts {
    /// Artifacts kept under `root` (a project's `Layout::artifacts`).
    pub fn new(root: &Path) -> Artifacts {
        Artifacts {
            root: root.to_path_buf(),
        }
    }

    /// Where the artifact of `service` at `version` lives: keyed by the
    /// version and, when there is one, the build command, so changing how a
    /// service is built never reuses what the old command produced.
    pub fn dir(&self, service: &Service, version: &str) -> PathBuf {
        let key = match &service.build {
            None => version.to_string(),
            Some(build) => {
                let digest = Sha256::digest(build.as_bytes());
                let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
                format!("{version}-{short}")
            }
        };
        self.root.join(&service.name).join(key)
    }

    /// The name of the artifact's directory under its service's: what the
    /// store records its digest by.
    pub fn key(&self, service: &Service, version: &str) -> String {
        self.dir(service, version)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Checks that the artifact still has the digest recorded when it was
    /// built.
    pub fn verify(&self, service: &Service, version: &str, expected: &str) -> Result<()> {
        let dir = self.dir(service, version);
        let found = digest(&dir)?;
        if found == expected {
            return Ok(());
        }
        Err(Error::Changed(Box::new(Changed {
            service: service.name.clone(),
            version: version[..version.len().min(12)].to_string(),
            dir,
            expected: expected.to_string(),
            found,
        })))
    }

    /// Whether a complete artifact exists.
    pub fn exists(&self, service: &Service, version: &str) -> bool {
        self.dir(service, version).join(MARKER).is_file()
    }

    /// Makes sure the artifact of `service` at `version` (its subtree id)
    /// exists, building it if needed.
    pub fn ensure(&self, repo: &Repo, service: &Service, version: &str) -> Result<Built> {
        if self.exists(service, version) {
            return Ok(Built::Reused);
        }
        let started = Instant::now();
        let final_dir = self.dir(service, version);
        let parent = self.root.join(&service.name);
        io(&parent, fs::create_dir_all(&parent))?;
        // A scratch directory of its own, so builds of the same version by
        // two tasks or processes never share one; kept (not auto-deleted)
        // because success renames it into place.
        let scratch = io(
            &parent,
            tempfile::Builder::new()
                .prefix(".building-")
                .tempdir_in(&parent),
        )?
        .keep();
        let tree: Oid = version.parse()?;
        repo.export(&tree, "", &scratch)?;
        if let Err(e) = refuse_escaping_links(&scratch, service, version) {
            let _ = fs::remove_dir_all(&scratch);
            return Err(e);
        }

        if let Some(build) = &service.build
            && let Err(failure) = run_build(&scratch, service, version, build)
        {
            let log = parent.join(format!("{version}.failed.log"));
            let _ = fs::rename(scratch.join(BUILD_LOG), &log);
            let _ = fs::remove_dir_all(&scratch);
            return Err(failure.with_log(&log));
        }
        let digest = match digest(&scratch) {
            Ok(digest) => digest,
            Err(e) => {
                let _ = fs::remove_dir_all(&scratch);
                return Err(e);
            }
        };
        let marker = scratch.join(MARKER);
        let description = format!(
            "service = {:?}\nversion = {version:?}\nbuild = {:?}\ndigest = {digest:?}\n",
            service.name,
            service.build.as_deref().unwrap_or("")
        );
        io(&marker, fs::write(&marker, description))?;
        if final_dir.exists() {
            // Another hifi built the same version meanwhile; theirs is as good.
            let _ = fs::remove_dir_all(&scratch);
            return Ok(Built::Reused);
        }
        io(&final_dir, fs::rename(&scratch, &final_dir))?;
        Ok(Built::Built(started.elapsed().as_millis(), digest))
    }
}

/// The content digest of an artifact directory, `sha256:<hex>`: every
/// entry in path order with its kind (directory, file, executable file,
/// symlink) and its content or link target. Times and owners are left out,
/// so the same bytes give the same digest wherever they are; the
/// completeness marker is left out, as it is written after.
pub fn digest(root: &Path) -> Result<String> {
    let mut hash = Sha256::new();
    hash.update(b"hifi-artifact-v1\0");
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let mut entries: Vec<(String, fs::FileType, PathBuf)> = Vec::new();
        for entry in io(&dir, fs::read_dir(&dir))? {
            let entry = io(&dir, entry)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if relative.as_os_str().is_empty() && name == MARKER {
                continue;
            }
            let kind = io(&entry.path(), entry.file_type())?;
            entries.push((name, kind, entry.path()));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // Subdirectories are walked after this directory's entries, in
        // reverse so the stack pops them in name order.
        let mut subdirs = Vec::new();
        for (name, kind, path) in entries {
            let shown = relative.join(&name);
            let shown = shown.to_string_lossy();
            if kind.is_dir() {
                hash.update(b"d\0");
                hash.update(shown.as_bytes());
                hash.update(b"\0");
                subdirs.push(relative.join(&name));
            } else if kind.is_symlink() {
                let target = io(&path, fs::read_link(&path))?;
                hash.update(b"l\0");
                hash.update(shown.as_bytes());
                hash.update(b"\0");
                hash.update(target.to_string_lossy().as_bytes());
                hash.update(b"\0");
            } else {
                let executable = is_executable(&io(&path, fs::metadata(&path))?);
                hash.update(if executable { b"x\0" } else { b"f\0" });
                hash.update(shown.as_bytes());
                hash.update(b"\0");
                let mut content = Sha256::new();
                let mut file = io(&path, File::open(&path))?;
                io(&path, std::io::copy(&mut file, &mut content))?;
                hash.update(content.finalize());
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    let digest = hash.finalize();
    Ok(format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

#[cfg(unix)]
fn is_executable(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &fs::Metadata) -> bool {
    false
}

/// Refuses a symlink under `root` whose target leaves `root` (absolute, or
/// climbing out with `..`). Judged on the link's text, never by following
/// it, so what the link points to on this machine does not matter.
fn refuse_escaping_links(root: &Path, service: &Service, version: &str) -> Result<()> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in io(&dir, fs::read_dir(&dir))? {
            let entry = io(&dir, entry)?;
            let path = entry.path();
            let kind = io(&path, entry.file_type())?;
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            if !kind.is_symlink() {
                continue;
            }
            let target = io(&path, fs::read_link(&path))?;
            let inside = path
                .parent()
                .and_then(|parent| parent.strip_prefix(root).ok())
                .map(|parent| stays_inside(parent, &target))
                .unwrap_or(false);
            if !inside {
                return Err(Error::EscapingLink {
                    service: service.name.clone(),
                    version: version[..version.len().min(12)].to_string(),
                    link: path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                    target: target.display().to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Whether `target`, relative to directory `from` (itself relative to the
/// root), names something inside the root.
fn stays_inside(from: &Path, target: &Path) -> bool {
    use std::path::Component;
    let mut depth = from.components().count();
    for part in target.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

struct BuildFailed {
    service: String,
    version: String,
    status: String,
}

impl BuildFailed {
    fn with_log(self, log: &Path) -> Error {
        let tail = fs::read_to_string(log)
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                let last = &lines[lines.len().saturating_sub(10)..];
                if last.is_empty() {
                    String::new()
                } else {
                    format!("\n  last lines:\n    {}", last.join("\n    "))
                }
            })
            .unwrap_or_default();
        Error::BuildFailed {
            service: self.service,
            version: self.version[..self.version.len().min(12)].to_string(),
            status: self.status,
            log: log.to_path_buf(),
            tail,
        }
    }
}

fn run_build(dir: &Path, service: &Service, version: &str, build: &str) -> Result<(), BuildFailed> {
    let failed = |status: String| BuildFailed {
        service: service.name.clone(),
        version: version.to_string(),
        status,
    };
    let log = File::create(dir.join(BUILD_LOG))
        .map_err(|e| failed(format!("cannot create the build log: {e}")))?;
    let log_err = log
        .try_clone()
        .map_err(|e| failed(format!("cannot open the build log: {e}")))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(build)
        .current_dir(dir)
        .env("HIFI_SERVICE", &service.name)
        .env("HIFI_VERSION", version)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| failed(format!("could not start `sh -c {build}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(match status.code() {
            Some(code) => format!("`{build}` exited with status {code}"),
            None => format!("`{build}` was killed by a signal"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_stays_inside_unless_it_climbs_out_or_is_absolute() {
        assert!(stays_inside(Path::new(""), Path::new("lib/a.py")));
        assert!(stays_inside(Path::new("bin"), Path::new("../lib/a.py")));
        assert!(!stays_inside(Path::new(""), Path::new("../secret")));
        assert!(!stays_inside(Path::new("bin"), Path::new("../../x")));
        assert!(!stays_inside(Path::new(""), Path::new("/etc/passwd")));
        assert!(stays_inside(Path::new("a/b"), Path::new("./../c")));
    }
}
