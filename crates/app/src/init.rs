//! `hifi init`: scaffold `hifi.toml` (the default workflow, the five
//! environments dev → uat → staging → prep → prod and the hotfix lane
//! beside prod, services found under
//! `services/`) and `.hifi/`, and keep `.hifi/` out of git. Never overwrites
//! an existing `hifi.toml`.

use std::fmt::Write as _;
use std::path::Path;

use hifi_core::event::EventKind;
use hifi_core::layout::STATE_DIR;
use hifi_core::{Config, Layout};
use hifi_store::Store;
use hifi_store::events::Subject;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::project::{Actor, now_ms, open_repo};

/// What `hifi init` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Initialized {
    /// The config file written.
    pub config: String,
    /// The base branch it chose.
    pub base: String,
    /// The services it found.
    pub services: Vec<String>,
    /// The environments it scaffolded.
    pub environments: Vec<String>,
}

/// Initializes hifi in the repository containing `dir`.
pub fn init(dir: &Path, actor: &Actor) -> Result<Initialized> {
    let repo = open_repo(dir)?;
    let layout = Layout::new(repo.root());
    let root = layout.root();
    let config_path = layout.config();
    if config_path.exists() {
        return Err(Error::ConfigExists { path: config_path });
    }

    // The trunk: main or master when there is one, else the current branch.
    let current = repo.current_branch()?;
    let base = match repo.resolve_branches(&["main", "master"])?.as_slice() {
        [Some(_), _] => "main".to_string(),
        [None, Some(_)] => "master".to_string(),
        _ => current.unwrap_or_else(|| "main".to_string()),
    };
    let base = base.as_str();
    let name = root
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("project");
    let services = detect_services(root);
    let text = scaffold(name, base, &services);
    // The scaffold must always be a valid config; a failure here is a bug in
    // hifi, reported rather than written.
    let config = Config::parse(&text).map_err(|e| {
        Error::Io(format!(
            "hifi init produced an invalid config ({e}); please report this"
        ))
    })?;

    std::fs::create_dir_all(layout.state_dir())?;
    ignore_state_dir(root)?;
    std::fs::write(&config_path, &text)?;
    let mut store = Store::open_in(&layout)?;
    let audit = hifi_store::Audit {
        actor: actor.name.clone(),
        at: now_ms(),
    };
    store.record_event(
        &audit,
        EventKind::ProjectInitialized,
        Subject::default(),
        &format!("initialized hifi for {name}"),
    )?;
    Ok(Initialized {
        config: config_path.display().to_string(),
        base: base.to_string(),
        services: config.services.iter().map(|s| s.name.clone()).collect(),
        environments: config.environments.iter().map(|e| e.name.clone()).collect(),
    })
}

struct Detected {
    name: String,
    path: String,
    run: String,
    build: Option<String>,
}

/// Services are the directories under `services/` with a recognisable entry
/// point; anything else is left for the user to describe.
fn detect_services(root: &Path) -> Vec<Detected> {
    let Ok(entries) = std::fs::read_dir(root.join("services")) else {
        return Vec::new();
    };
    let mut found: Vec<Detected> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let dir_name = e.file_name().to_str()?.to_string();
            let name = dir_name.to_ascii_lowercase().replace('_', "-");
            if !hifi_core::is_valid_name(&name) {
                return None;
            }
            let (run, build) = if e.path().join("app.py").is_file() {
                ("python3 app.py", Some("python3 -m py_compile app.py"))
            } else if e.path().join("package.json").is_file() {
                ("npm start", Some("npm ci"))
            } else if e.path().join("Cargo.toml").is_file() {
                ("./target/release/app", Some("cargo build --release"))
            } else {
                return None;
            };
            Some(Detected {
                path: format!("services/{dir_name}"),
                name,
                run: run.to_string(),
                build: build.map(str::to_string),
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

fn scaffold(name: &str, base: &str, services: &[Detected]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# hifi: deploy {name} through dev → uat → staging → prep → prod.\n\
         # Reference: README.md (\"Config reference\").\n\n\
         [project]\nname = {name:?}\nbase = {base:?}   # trunk every composition starts from\n\n\
         [workflow]\nstages = [\"Ready for Dev\", \"In Dev\", \"Ready for Test\", \"In Test\",\n          \
         \"Ready for PO Sign-Off\", \"Ready for Production\", \"Deploy\", \"Done\"]\n"
    );
    if services.is_empty() {
        text.push_str(
            "# Describe each service, for example:\n\
             # [[service]]\n# name = \"catalog\"\n# path = \"services/catalog\"\n\
             # build = \"python3 -m py_compile app.py\"\n# run = \"python3 app.py\"\n\
             # health = \"/healthz\"\n# route = \"/catalog\"\n\n",
        );
    }
    for s in services {
        let route = if services.len() == 1 {
            "/".to_string()
        } else {
            format!("/{}", s.name)
        };
        let _ = writeln!(
            text,
            "[[service]]\nname = {:?}\npath = {:?}",
            s.name, s.path
        );
        if let Some(build) = &s.build {
            let _ = writeln!(text, "build = {build:?}");
        }
        let _ = writeln!(
            text,
            "run = {:?}\nhealth = \"/healthz\"\nroute = {route:?}\n",
            s.run
        );
    }
    let envs = [
        ("dev", 8100, "cards_from = \"In Dev\""),
        ("uat", 8200, "cards_from = \"Ready for Test\""),
        ("staging", 8300, "cards_from = \"Ready for PO Sign-Off\""),
        ("prep", 8400, "cards_from = \"Ready for Production\""),
    ];
    for (env, port, origin) in envs {
        let _ = writeln!(
            text,
            "[[environment]]\nname = \"{env}\"\nport = {port}\n{origin}\nstrategy = \"blue-green\"\n"
        );
    }
    text.push_str(
        "[[environment]]\nname = \"prod\"\nport = 8500\n\
         promote_from = [\"prep\", \"hotfix\"]   # fidelity gate: only releases verified in prep or hotfix\n\
         strategy = \"canary\"\napprovals = 1\nsoak = \"30s\"\n\
         [environment.canary]\nsteps = [10, 50, 100]\ninterval = \"30s\"\n\
         max_error_rate = 0.01\nmax_p99_ms = 500\nmin_requests = 20\n\n\
         # The hotfix lane: prod's live release plus the open hotfix cards\n\
         # (hifi card add ID --branch B --hotfix), verified here, then promoted.\n\
         [[environment]]\nname = \"hotfix\"\nport = 8600\nhotfix_of = \"prod\"\n\
         strategy = \"blue-green\"\n",
    );
    text
}

/// Adds `.hifi/` to the repository's `.gitignore` unless it is there.
fn ignore_state_dir(root: &Path) -> Result<()> {
    let path = root.join(".gitignore");
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let wanted = format!("{STATE_DIR}/");
    if current.lines().any(|l| {
        let l = l.trim();
        l == wanted || l == STATE_DIR || l == format!("/{wanted}") || l == format!("/{STATE_DIR}")
    }) {
        return Ok(());
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&wanted);
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_is_a_valid_config_with_and_without_services() {
        let none = Config::parse(&scaffold("shop", "main", &[])).unwrap();
        assert_eq!(none.environments.len(), 6);
        assert_eq!(
            none.environment("prod").unwrap().promote_from(),
            ["prep", "hotfix"]
        );
        assert_eq!(
            none.environment("hotfix").unwrap().hotfix_of(),
            Some("prod")
        );
        let two = [
            Detected {
                name: "api".into(),
                path: "services/api".into(),
                run: "python3 app.py".into(),
                build: None,
            },
            Detected {
                name: "web".into(),
                path: "services/web".into(),
                run: "npm start".into(),
                build: Some("npm ci".into()),
            },
        ];
        let config = Config::parse(&scaffold("shop", "master", &two)).unwrap();
        assert_eq!(config.services.len(), 2);
        assert_eq!(config.base, "master");
    }
}
