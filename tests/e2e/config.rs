//! A wrong `hifi.toml` is a config error (exit 2) naming the file, the line
//! and the key, and no command changes anything while it is wrong.

use super::util::{TestProject, assert_mentions};

const GOOD: &str = r#"[project]
name = "shop"
base = "main"

[[service]]
name = "catalog"
path = "services/catalog"
run = "python3 app.py"
health = "/healthz"
route = "/catalog"

[[service]]
name = "checkout"
path = "services/checkout"
run = "python3 app.py"
health = "/healthz"
route = "/checkout"

[[environment]]
name = "dev"
port = 18100
cards_from = "In Dev"

[[environment]]
name = "uat"
port = 18200
cards_from = "In Test"

[[environment]]
name = "prep"
port = 18400
cards_from = "Ready for Production"

[[environment]]
name = "prod"
port = 18500
promote_from = "prep"
approvals = 1
"#;

/// A broken config: `from` replaced by `to` in [`GOOD`]; the error must be
/// on a line marked `# here` and name each of `keys`.
struct Bad {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    keys: &'static [&'static str],
}

const BAD: &[Bad] = &[
    Bad {
        what: "unknown key",
        from: "route = \"/catalog\"\n",
        to: "route = \"/catalog\"\nreplica = 3 # here\n",
        keys: &["replica"],
    },
    Bad {
        what: "replicas out of range",
        from: "route = \"/catalog\"\n",
        to: "route = \"/catalog\"\nreplicas = 0 # here\n",
        keys: &["replicas"],
    },
    Bad {
        what: "an image path that leaves the service",
        from: "route = \"/catalog\"\n",
        to: "route = \"/catalog\"\nimage = \"../Dockerfile\" # here\n",
        keys: &["image"],
    },
    Bad {
        what: "TOML syntax error",
        from: "name = \"shop\"",
        to: "name = \"shop # here",
        keys: &[],
    },
    Bad {
        what: "cards_from stage not in the workflow",
        from: "cards_from = \"In Test\"",
        to: "cards_from = \"In Review\" # here",
        keys: &["cards_from", "In Review"],
    },
    Bad {
        what: "promote_from naming no environment",
        from: "promote_from = \"prep\"",
        to: "promote_from = \"staging\" # here",
        keys: &["promote_from", "staging"],
    },
    Bad {
        what: "environment promoting from itself",
        from: "promote_from = \"prep\"\n",
        to: "promote_from = \"prod\" # here\n",
        keys: &["promote_from"],
    },
    Bad {
        what: "promote_from cycle through two environments",
        from: "cards_from = \"Ready for Production\"\n\n[[environment]]\nname = \"prod\"\nport = 18500\npromote_from = \"prep\"",
        to: "promote_from = \"prod\" # here\n\n[[environment]]\nname = \"prod\"\nport = 18500\npromote_from = \"prep\" # here",
        keys: &["promote_from"],
    },
    Bad {
        what: "both cards_from and promote_from",
        from: "cards_from = \"In Test\"",
        to: "cards_from = \"In Test\" # here\npromote_from = \"dev\" # here",
        keys: &["cards_from", "promote_from"],
    },
    Bad {
        what: "neither cards_from nor promote_from",
        from: "[[environment]]\nname = \"uat\"\nport = 18200\ncards_from = \"In Test\"\n",
        to: "[[environment]] # here\nname = \"uat\" # here\nport = 18200\n",
        keys: &["cards_from", "promote_from"],
    },
    Bad {
        what: "two environments on one port",
        from: "port = 18200",
        to: "port = 18100 # here",
        keys: &["port", "18100"],
    },
    Bad {
        what: "two services on one route",
        from: "route = \"/checkout\"",
        to: "route = \"/catalog/\" # here",
        keys: &["route", "/catalog"],
    },
    Bad {
        what: "hotfix_of naming no environment",
        from: "approvals = 1\n",
        to: "approvals = 1\n\n[[environment]]\nname = \"hotfix\"\nport = 18600\nhotfix_of = \"qa\" # here\n",
        keys: &["hotfix_of", "qa"],
    },
    Bad {
        what: "a hotfix environment that itself promotes",
        from: "approvals = 1\n",
        to: "approvals = 1\n\n[[environment]]\nname = \"hotfix\"\nport = 18600\npromote_from = \"prep\" # here\nhotfix_of = \"prod\"\n",
        keys: &["promote_from", "hotfix_of"],
    },
    Bad {
        what: "a window that does not parse",
        from: "approvals = 1\n",
        to: "approvals = 1\nwindows = [\"whenever\"] # here\n",
        keys: &["windows", "DAYS HH:MM-HH:MM ZONE"],
    },
    Bad {
        what: "a window in an unknown time zone",
        from: "approvals = 1\n",
        to: "approvals = 1\nwindows = [\"Mon-Fri 09:00-16:00 Mars/Olympus\"] # here\n",
        keys: &["windows", "Mars/Olympus"],
    },
    Bad {
        what: "service path outside the repository",
        from: "path = \"services/checkout\"",
        to: "path = \"../x\" # here",
        keys: &["path", "../x"],
    },
];

#[test]
fn each_config_error_names_file_line_and_key_and_changes_nothing() {
    let p = TestProject::new()
        .service("catalog")
        .service("checkout")
        .config(GOOD)
        .card(
            "PAY-1",
            "feature/pay-1",
            &[("services/catalog/pay.txt", "pay\n")],
        )
        .at("PAY-1", "In Dev");
    let before = p.recorded();

    for bad in BAD {
        assert!(GOOD.contains(bad.from), "{}: bad test case", bad.what);
        let text = GOOD.replacen(bad.from, bad.to, 1);
        p.write("hifi.toml", &text);
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("# here"))
            .map(|(i, _)| i + 1)
            .collect();

        // Both would write if the config were valid.
        for args in [
            &["card", "add", "NEW-1", "--branch", "feature/new"][..],
            &["compose", "dev"],
        ] {
            let stderr = p.hifi(args).fails(2);
            let context = format!("{} (hifi {})", bad.what, args.join(" "));
            assert_mentions(&stderr, &["hifi.toml"]);
            assert!(
                lines
                    .iter()
                    .any(|n| stderr.contains(&format!("hifi.toml:{n}"))
                        || stderr.contains(&format!("line {n}"))),
                "{context}: expected one of lines {lines:?} in:\n{stderr}"
            );
            for key in bad.keys {
                assert!(
                    stderr.contains(key),
                    "{context}: expected {key:?} in:\n{stderr}"
                );
            }
        }

        p.git(&["checkout", "--", "hifi.toml"]);
        assert_eq!(p.recorded(), before, "{} changed something", bad.what);
    }

    std::fs::remove_file(p.path().join("hifi.toml")).unwrap();
    let stderr = p
        .hifi(&["card", "add", "NEW-1", "--branch", "main"])
        .fails(2);
    assert_mentions(&stderr, &["hifi.toml", "hifi init"]);
    p.git(&["checkout", "--", "hifi.toml"]);
    assert_eq!(p.recorded(), before);
}

#[test]
fn without_hifi_toml_commands_suggest_init_and_create_nothing() {
    let p = TestProject::new();

    for args in [&["card", "list"][..], &["compose", "dev"], &["board"]] {
        let stderr = p.hifi(args).fails(2);
        assert_mentions(&stderr, &["hifi.toml", "hifi init"]);
    }
    assert!(!p.path().join(".hifi").exists());
}

#[test]
fn a_bad_config_creates_no_state_directory() {
    let p = TestProject::new().service("catalog");
    p.write("hifi.toml", &GOOD.replace("port = 18200", "port = 18100"));

    p.hifi(&["card", "add", "PAY-1", "--branch", "main"])
        .fails(2);

    assert!(!p.path().join(".hifi").exists());
}
