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
    let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
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

/// Every stored table, sorted by environment name.
pub(crate) fn load_all(dir: &Path) -> Result<Vec<TableSpec>> {
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
