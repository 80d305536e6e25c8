//! The remote CLI: `hifi up` serving the team server (`[server]`), and
//! every command run from elsewhere with HIFI_SERVER and HIFI_TOKEN
//! printing what it prints here — text, `--json` and exit codes — with
//! the token's name recorded as the actor.

use hifi_testkit::loopback_port;

use super::cluster::{Cluster, blue_green};
use super::util::{assert_mentions, hifi_remote, parse_json};

/// A running hifi serving its API, and an admin token.
fn served() -> (Cluster, String, String) {
    let c = Cluster::new([blue_green("dev"), blue_green("uat")]);
    let port = loopback_port();
    let path = c.root().join("hifi.toml");
    let mut toml = std::fs::read_to_string(&path).unwrap();
    toml.push_str(&format!("\n[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    c.project()
        .commit_files("serve the team", &[("hifi.toml", &toml)]);
    let admin = c.hifi(&["token", "create", "ada", "--role", "admin"]).ok();
    let admin = admin.trim().to_string();
    assert!(admin.starts_with("hifi_"), "{admin}");
    c.up();
    (c, format!("http://127.0.0.1:{port}"), admin)
}

/// Drops the timing lines that differ between two runs a moment apart.
fn same(local: &str, remote: &str, what: &str) {
    assert_eq!(local, remote, "{what}: local and remote differ");
}

#[test]
fn every_command_prints_the_same_remotely_as_here() {
    let (c, url, admin) = served();
    c.project()
        .branch("feature/a", &[("services/api/a.txt", "a\n")]);
    let added = hifi_remote(
        &url,
        Some(&admin),
        &[
            "card",
            "add",
            "A-1",
            "--branch",
            "feature/a",
            "--title",
            "A",
        ],
    )
    .ok();
    assert_eq!(added, "Added A-1 at Ready for Dev (branch feature/a).\n");
    let moved = hifi_remote(&url, Some(&admin), &["card", "move", "A-1", "in-dev"]).ok();
    assert_mentions(&moved, &["Moved A-1: Ready for Dev → In Dev", "dev"]);
    let composed = hifi_remote(&url, Some(&admin), &["compose", "dev"]);
    let release = composed.stdout.trim().to_string();
    assert_eq!(release.len(), 12, "{composed}");
    assert_mentions(
        &composed.stderr,
        &["composed dev: new release", "branch    hifi/env/dev"],
    );

    for args in [
        &["card", "list"][..],
        &["board"],
        &["status"],
        &["status", "dev"],
        &["releases"],
        &["release", "show", &release[..8]],
        &["diff", "dev", "uat"],
        &["history", "dev"],
        &["--json", "status"],
        &["--json", "board"],
        &["--json", "releases"],
        &["--json", "release", "show", &release],
        &["--json", "diff", "dev", "uat"],
        &["token", "list"],
    ] {
        let local = c.hifi(args).ok();
        let remote = hifi_remote(&url, Some(&admin), args).ok();
        same(&local, &remote, &args.join(" "));
    }
    // Refusals too: the same message and exit code.
    for args in [
        &["card", "move", "NOPE-1", "in-dev"][..],
        &["deploy", "nowhere"],
        &["diff", "dev", "nowhere"],
    ] {
        let local = c.hifi(args).fails(1);
        let remote = hifi_remote(&url, Some(&admin), args).fails(1);
        same(&local, &remote, &args.join(" "));
    }

    // Deploying and following it to the end, remotely.
    let deployed = hifi_remote(&url, Some(&admin), &["deploy", "dev", "--wait"]);
    assert_mentions(&deployed.ok(), &["Deployment #1", "is live in dev"]);
    let history = parse_json(&c.hifi(&["--json", "history", "dev"]).ok());
    assert_eq!(
        history[0]["deployment"]["actor"], "ada",
        "the token's name is the actor"
    );
}

#[test]
fn roles_tokens_and_bad_credentials_are_told_apart_by_exit_code() {
    let (c, url, admin) = served();
    let viewer = hifi_remote(
        &url,
        Some(&admin),
        &["token", "create", "vic", "--role", "viewer"],
    )
    .ok();
    let viewer = viewer.trim().to_string();
    hifi_remote(&url, Some(&viewer), &["board"]).ok();
    let refused = hifi_remote(
        &url,
        Some(&viewer),
        &["card", "add", "A-1", "--branch", "feature/a"],
    )
    .fails(1);
    assert_eq!(
        refused,
        "error: vic (viewer) may not change cards\n  hint: ask someone whose role allows it, or an admin for another role\n"
    );
    let refused = hifi_remote(&url, Some(&viewer), &["token", "list"]).fails(1);
    assert_mentions(&refused, &["may not manage tokens"]);

    let revoked = hifi_remote(&url, Some(&admin), &["token", "revoke", "vic"]).ok();
    assert_eq!(revoked, "Revoked token vic: it authenticates no more.\n");
    let stderr = hifi_remote(&url, Some(&viewer), &["board"]).fails(1);
    assert_mentions(&stderr, &["token vic was revoked"]);
    let stderr = hifi_remote(&url, Some("hifi_nope"), &["board"]).fails(1);
    assert_mentions(&stderr, &["that is not a hifi token"]);
    let stderr = hifi_remote(&url, None, &["board"]).fails(2);
    assert_mentions(&stderr, &["needs a token", "HIFI_TOKEN"]);
    let stderr = hifi_remote("http://127.0.0.1:1", Some(&admin), &["board"]).fails(1);
    assert_mentions(&stderr, &["cannot connect to 127.0.0.1:1"]);
    // Usage errors stay usage errors.
    hifi_remote(&url, Some(&admin), &["card", "frobnicate"]).fails(2);
    let stderr = hifi_remote(&url, Some(&admin), &["state", "restore"]).fails(1);
    assert_mentions(&stderr, &["already running"]);
    let json = parse_json(&hifi_remote(&url, Some(&admin), &["--json", "token", "list"]).ok());
    assert_eq!(json.as_array().unwrap().len(), 2);
    c.hifi(&["down"]).ok();
}

#[test]
fn metrics_time_each_environments_reconciliation() {
    let (_c, url, admin) = served();
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    use std::io::{Read, Write};
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // `hifi up` is ready once every environment had its first pass.
    for env in ["dev", "uat"] {
        let count = format!("hifi_reconcile_seconds_count{{env=\"{env}\",outcome=\"ok\"}} ");
        let line = answer
            .lines()
            .find(|l| l.starts_with(&count))
            .unwrap_or_else(|| panic!("no {count} in {answer}"));
        let passes: u64 = line[count.len()..].trim().parse().unwrap();
        assert!(passes >= 1, "{line}");
    }
    assert!(!answer.contains(&admin), "the token is never shown");
}
