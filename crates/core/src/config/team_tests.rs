//! The team server's keys: `[server]`, `[[notify]]` and `four_eyes`, each
//! with the error a user sees.

use super::*;

const BASE: &str = r#"
[project]
name = "shop"

[[environment]]
name = "dev"
port = 8100
cards_from = "In Dev"

[[environment]]
name = "prod"
port = 8500
promote_from = "dev"
"#;

fn with(extra: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("{BASE}{extra}"))
}

fn err(extra: &str) -> ConfigError {
    with(extra).expect_err("config should be refused")
}

#[test]
fn no_server_and_no_webhooks_by_default() {
    let config = with("").unwrap();
    assert_eq!(config.server, None);
    assert!(config.notify.is_empty());
    assert!(!config.environment("prod").unwrap().four_eyes);
}

#[test]
fn server_listens_where_told_and_defaults_to_loopback_8000() {
    let config = with("\n[server]\n").unwrap();
    let server = config.server.unwrap();
    assert_eq!(server.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(server.tls, None);
    let config = with(
        "\n[server]\nlisten = \"127.0.0.1:9443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
    )
    .unwrap();
    let server = config.server.unwrap();
    assert_eq!(server.listen.port(), 9443);
    assert_eq!(server.tls.unwrap().key, std::path::PathBuf::from("k.pem"));
}

#[test]
fn the_public_url_is_an_origin() {
    let server = with("\n[server]\n").unwrap().server.unwrap();
    assert_eq!(server.url, None);
    assert_eq!(server.public_url(), "http://127.0.0.1:8000");
    for (given, origin) in [
        ("https://HiFi.example.com/", "https://hifi.example.com"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
    ] {
        let server = with(&format!("\n[server]\nurl = \"{given}\"\n"))
            .unwrap()
            .server
            .unwrap();
        assert_eq!(server.url.as_deref(), Some(origin), "{given}");
        assert_eq!(server.public_url(), origin);
    }
    for bad in [
        "hifi.example.com",
        "ftp://hifi.example.com",
        "https://hifi.example.com/dashboard",
        "https://user:pw@hifi.example.com",
        "https://hifi.example.com:port",
        "https://",
    ] {
        let e = err(&format!("\n[server]\nurl = \"{bad}\"\n"));
        assert_eq!(e.key, "server.url", "{bad}");
        assert!(
            e.message.contains("scheme, host and port only"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn tls_needs_both_cert_and_key() {
    let e = err("\n[server]\ntls_cert = \"c.pem\"\n");
    assert_eq!(e.key, "server.tls_cert");
    assert!(e.message.contains("add `tls_key`"), "{e}");
    let e = err("\n[server]\ntls_key = \"k.pem\"\n");
    assert!(e.message.contains("add `tls_cert`"), "{e}");
    let e = err("\n[server]\nlisten = \"localhost\"\n");
    assert_eq!(e.key, "server.listen");
    assert!(e.line.is_some());
}

#[test]
fn webhooks_are_read_with_their_filters_and_secrets_as_written() {
    let config = with(
        r#"
[[notify]]
url = "${SLACK_WEBHOOK_URL}"
format = "slack"
events = ["deployment.*", "card.moved"]

[[notify]]
url = "http://127.0.0.1:9/hook"
secret = "${HIFI_WEBHOOK_SECRET}"
"#,
    )
    .unwrap();
    let slack = &config.notify[0];
    assert_eq!(
        (slack.url.as_str(), slack.format),
        ("${SLACK_WEBHOOK_URL}", NotifyFormat::Slack)
    );
    assert_eq!(slack.events.len(), 2);
    assert!(slack.events[0].matches("deployment.live"));
    let json = &config.notify[1];
    assert_eq!(json.format, NotifyFormat::Json);
    assert!(json.events[0].matches("anything.at-all"));
    assert_eq!(json.secret.as_deref(), Some("${HIFI_WEBHOOK_SECRET}"));
}

#[test]
fn webhook_mistakes_name_their_key() {
    let e = err("\n[[notify]]\nurl = \"ftp://x\"\n");
    assert_eq!(e.key, "notify[0].url");
    let e = err("\n[[notify]]\nurl = \"http://x\"\nformat = \"teams\"\n");
    assert_eq!(e.key, "notify[0].format");
    let e = err("\n[[notify]]\nurl = \"http://x\"\nevents = [\"deploy.*\"]\n");
    assert_eq!(e.key, "notify[0].events");
    assert!(e.message.contains("matches no event"), "{e}");
    let e = err("\n[[notify]]\nurl = \"http://x\"\nformat = \"slack\"\nsecret = \"s\"\n");
    assert_eq!(e.key, "notify[0].secret");
    let e = err("\n[[notify]]\nurl = \"${NOT CLOSED\"\n");
    assert_eq!(e.key, "notify[0].url");
    let e = err("\n[[notify]]\nurl = \"http://x\"\ncolour = \"red\"\n");
    assert!(e.message.contains("colour"), "{e}");
}

#[test]
fn four_eyes_alone_asks_for_one_other_person() {
    let config = with("four_eyes = true\n").unwrap();
    let prod = config.environment("prod").unwrap();
    assert!(prod.four_eyes);
    assert_eq!(prod.approvals, 1);
    let config = with("four_eyes = true\napprovals = 2\n").unwrap();
    assert_eq!(config.environment("prod").unwrap().approvals, 2);
    let e = err("four_eyes = true\napprovals = 0\n");
    assert_eq!(e.key, "environment[1].approvals");
}
