//! Durable copy of the routing tables, one JSON file per environment under
//! `<state_dir>/tables/`, so a restarted proxy serves exactly what it served
//! before. A file is replaced atomically (write a temporary file, fsync it,
//! rename it over the old one, fsync the directory): after a crash the file
//! holds either the old table or the new one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::table::TableSpec;

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Where tables live inside the state directory.
pub(crate) fn tables_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("tables")
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

/// Write `spec` durably as `<dir>/<env>.json`.
pub(crate) fn save(dir: &Path, spec: &TableSpec) -> Result<()> {
    let path = dir.join(format!("{}.json", spec.env));
    let tmp = dir.join(format!(".{}.json.tmp", spec.env));
    let mut bytes = serde_json::to_vec_pretty(spec).map_err(|e| Error::CorruptState {
        path: path.clone(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    // Tables may hold the preview token: readable by the proxy's user only.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?
    };
    restrict(&tmp, 0o600)?;
    f.write_all(&bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io("rename into place", &path))?;
    sync_dir(dir)
}

/// Remove the table of `env`, durably.
pub(crate) fn delete(dir: &Path, env: &str) -> Result<()> {
    let path = dir.join(format!("{env}.json"));
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", &path)(e)),
    }
}

/// Set `path`'s mode (a file left by an older version may be 0644).
fn restrict(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io("restrict", path))
}

/// Every stored table, sorted by environment name. The directory and the
/// tables are made private to the proxy's user (0700 / 0600) on the way,
/// since tables may hold the preview token.
pub(crate) fn load_all(dir: &Path) -> Result<Vec<TableSpec>> {
    restrict(dir, 0o700)?;
    let mut tables = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("read directory", dir))? {
        let entry = entry.map_err(io("read directory", dir))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Leftover temporary files of an interrupted write are ignored: the
        // rename never happened, so the previous table is the valid one.
        let Some(env) = name
            .strip_suffix(".json")
            .filter(|_| !name.starts_with('.'))
            .map(str::to_owned)
        else {
            continue;
        };
        restrict(&path, 0o600)?;
        let bytes = fs::read(&path).map_err(io("read", &path))?;
        let spec = TableSpec::from_json(&bytes).map_err(|e| Error::CorruptState {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if spec.env != env {
            return Err(Error::CorruptState {
                path,
                message: format!("it holds environment {:?}, not {env:?}", spec.env),
            });
        }
        tables.push(spec);
    }
    tables.sort_by(|a, b| a.env.cmp(&b.env));
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn tables_are_private_to_the_proxy_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = TableSpec::from_json(
            br#"{"env":"prod","listen":"127.0.0.1:8500","preview_token":"s3cret","services":[]}"#,
        )
        .expect("table");
        // A table left world-readable by an older version is fixed on load.
        fs::write(
            dir.path().join("old.json"),
            br#"{"env":"old","listen":"127.0.0.1:8501","services":[]}"#,
        )
        .expect("write");
        fs::set_permissions(
            dir.path().join("old.json"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        save(dir.path(), &spec).expect("save");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("prod.json")), 0o600);
        assert_eq!(load_all(dir.path()).expect("load").len(), 2);
        assert_eq!(mode(&dir.path().join("old.json")), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
    }
}
