//! Artifacts: each service version is built once and kept under
//! `.hifi/artifacts/<service>/<version>/`; a failed build stops the composition.

use std::path::PathBuf;

use super::util::{TestProject, assert_mentions};

fn version(p: &TestProject, env: &str, service: &str) -> String {
    p.rev(&format!("hifi/env/{env}:services/{service}"))
        .unwrap()
}

#[test]
fn a_service_version_is_built_once_and_kept_with_its_log() {
    let p = TestProject::new()
        .service("catalog")
        .service("checkout")
        .standard();

    p.hifi(&["compose", "dev"]).ok();
    p.hifi(&["compose", "uat"]).ok();
    p.hifi(&["compose", "dev"]).ok();
    assert_eq!((p.builds("catalog"), p.builds("checkout")), (1, 1));

    p.branch("feature/cat-1", &[("services/catalog/new.txt", "new\n")]);
    p.hifi(&["card", "add", "CAT-1", "--branch", "feature/cat-1"])
        .ok();
    p.move_card("CAT-1", "In Dev");
    let composed = p.json(&["compose", "dev"]);
    assert_eq!(composed["built"], serde_json::json!(["catalog"]));
    assert_eq!((p.builds("catalog"), p.builds("checkout")), (2, 1));

    // uat still has the old catalog version: its artifact is reused.
    p.hifi(&["compose", "uat"]).ok();
    assert_eq!((p.builds("catalog"), p.builds("checkout")), (2, 1));

    for env in ["dev", "uat"] {
        for service in ["catalog", "checkout"] {
            let dir = artifact_dir(&p, service, &version(&p, env, service));
            assert!(dir.is_dir(), "{} missing", dir.display());
            let built = std::fs::read_to_string(dir.join("built.txt")).unwrap();
            assert_eq!(
                built,
                format!("artifact-of-{service}\n"),
                "the build's output is kept"
            );
            let has_log = std::fs::read_dir(&dir)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().contains("log"));
            assert!(has_log, "no build log in {}", dir.display());
        }
    }
    assert!(
        !p.path().join("services/catalog/built.txt").exists(),
        "builds run in an export, not in the work tree"
    );
}

#[test]
fn lost_artifacts_are_rebuilt_into_the_same_release() {
    let p = TestProject::new().service("catalog").standard();
    let id = p.hifi(&["compose", "dev"]).ok();
    let commit = p.rev("hifi/env/dev");

    std::fs::remove_dir_all(p.path().join(".hifi/artifacts")).unwrap();

    assert_eq!(p.hifi(&["compose", "dev"]).ok(), id);
    assert_eq!(p.builds("catalog"), 2);
    assert_eq!(p.rev("hifi/env/dev"), commit);
    assert_eq!(p.releases().len(), 1);
    let version = version(&p, "dev", "catalog");
    assert!(artifact_dir(&p, "catalog", &version).is_dir());
}

/// The existing paths ending in `.log` that `text` mentions.
fn log_paths(text: &str) -> Vec<PathBuf> {
    text.split_whitespace()
        .map(|w| PathBuf::from(w.trim_matches(|c: char| "`'\"(),;".contains(c))))
        .filter(|p| p.extension().is_some_and(|e| e == "log") && p.is_file())
        .collect()
}

#[test]
fn failing_build_stops_the_composition_and_keeps_its_log() {
    let p = TestProject::new()
        .service_with_build(
            "catalog",
            "echo compiling catalog; if [ -f broken ]; then echo syntax error >&2; exit $((1 + 2)); fi",
        )
        .standard()
        .card("BRK-1", "feature/brk-1", &[("services/catalog/broken", "\n")]);
    p.hifi(&["compose", "dev"]).ok();
    p.move_card("BRK-1", "In Dev");
    let before = p.recorded();

    let stderr = p.hifi(&["compose", "dev"]).fails(1);

    assert_mentions(&stderr, &["catalog"]);
    assert!(
        ["status 3", "code 3", "exit 3", "exited with 3"]
            .iter()
            .any(|s| stderr.contains(s)),
        "the exit status is reported:\n{stderr}"
    );
    let logs = log_paths(&stderr);
    assert_eq!(logs.len(), 1, "one existing log path in:\n{stderr}");
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert_mentions(&log, &["compiling catalog", "syntax error"]);
    assert_eq!(
        p.recorded(),
        before,
        "branch not moved, no release recorded"
    );
    // Main has not moved since the card branched: that is the version that failed.
    let failed = p.rev("feature/brk-1:services/catalog").unwrap();
    let artifact = p.path().join(".hifi/artifacts/catalog").join(&failed);
    assert!(
        !artifact.exists(),
        "no half-built artifact at {}",
        artifact.display()
    );

    // Never composed: no branch appears, and the failure is not cached.
    p.move_card("BRK-1", "In Test");
    p.hifi(&["compose", "uat"]).fails(1);
    assert_eq!(p.rev("hifi/env/uat"), None);
    assert_eq!(p.releases().len(), 1);
}

/// The artifact directory of a service version: `<service>/<version>`, with
/// a suffix naming the build command when the service has one.
fn artifact_dir(p: &TestProject, service: &str, version: &str) -> std::path::PathBuf {
    let parent = p.path().join(".hifi/artifacts").join(service);
    std::fs::read_dir(&parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .map(|e| e.unwrap().path())
        .find(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(version))
                && d.is_dir()
        })
        .unwrap_or_else(|| panic!("no artifact of {service} {version} in {}", parent.display()))
}

#[test]
fn a_changed_build_command_builds_again_and_makes_a_new_release() {
    let p = TestProject::new().service("catalog").standard();
    let first = p.hifi(&["compose", "dev"]).ok();
    assert_eq!(p.builds("catalog"), 1);

    // Same source, another way to build it: another release, built anew,
    // and the first release's artifact is kept as it was.
    let text = p.read("hifi.toml").replace(
        "echo artifact-of-catalog > built.txt",
        "echo rebuilt > built.txt",
    );
    p.write("hifi.toml", &text);
    let second = p.hifi(&["compose", "dev"]).ok();

    assert_ne!(first, second, "the build recipe is part of the release id");
    assert_eq!(p.builds("catalog"), 2);
    let parent = p.path().join(".hifi/artifacts/catalog");
    let mut outputs: Vec<String> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.is_dir())
        .map(|d| std::fs::read_to_string(d.join("built.txt")).unwrap())
        .collect();
    outputs.sort();
    assert_eq!(outputs, ["artifact-of-catalog\n", "rebuilt\n"]);
}

#[test]
fn a_symlink_out_of_the_service_directory_is_refused_and_one_inside_is_kept() {
    let p = TestProject::new().service("catalog").standard();
    let link = p.path().join("services/catalog/config.txt");
    std::os::unix::fs::symlink("app.py", &link).expect("symlink inside");
    p.git(&["add", "services/catalog/config.txt"]);
    p.git(&["commit", "-q", "-m", "a link inside"]);
    p.hifi(&["compose", "dev"]).ok();

    let outside = p.path().join("services/catalog/secret");
    std::os::unix::fs::symlink("../../README", &outside).expect("symlink outside");
    p.git(&["add", "services/catalog/secret"]);
    p.git(&["commit", "-q", "-m", "a link out"]);
    let before = p.recorded();
    let stderr = p.hifi(&["compose", "dev"]).fails(1);
    assert_mentions(
        &stderr,
        &[
            "symlink",
            "secret",
            "../../README",
            "outside its directory",
            "hint:",
        ],
    );
    assert_eq!(
        p.recorded(),
        before,
        "a refused composition changed something"
    );
}
