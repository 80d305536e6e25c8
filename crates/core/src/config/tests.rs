//! The config's parsing and validation rules, each with the error a user sees.

use super::*;
use crate::Protocol;

const MINIMAL: &str = r#"
[project]
name = "shop"

[[service]]
name = "catalog"
path = "services/catalog"
run = "python3 app.py"
health = "/healthz"
route = "/catalog"

[[environment]]
name = "dev"
port = 8100
cards_from = "in-dev"

[[environment]]
name = "prod"
port = 8500
promote_from = "dev"
strategy = "canary"
approvals = 1
[environment.canary]
steps = [10, 50]
interval = "5s"
[environment.vars]
MODE = "${MODE}"
"#;

fn err(source: &str) -> ConfigError {
    Config::parse(source).expect_err("config should be refused")
}

#[test]
fn minimal_config_parses_with_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(config.base, "main");
    let dev = config.environment("dev").unwrap();
    assert_eq!(dev.cards_from().unwrap().name, "In Dev");
    assert_eq!(dev.strategy, Strategy::BlueGreen);
    assert_eq!(dev.user_key, UserKey::Cookie("hifi-user".into()));
    let prod = config.environment("prod").unwrap();
    assert_eq!(prod.promote_from(), ["dev"]);
    assert_eq!(prod.canary.steps, vec![10.0, 50.0, 100.0]);
    assert_eq!(prod.canary.interval, Duration::from_secs(5));
    assert_eq!(prod.vars["MODE"], "${MODE}");
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = err(&MINIMAL.replace("route = \"/catalog\"", "route = \"/catalog\"\nreplica = 3"));
    assert!(e.message.contains("replica"), "{e}");
    assert_eq!(e.line, Some(11));
}

#[test]
fn images_and_replicas_are_read_and_checked() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        (
            config.services[0].image.as_deref(),
            config.services[0].replicas
        ),
        (None, 1)
    );
    let with = MINIMAL.replace(
        "route = \"/catalog\"",
        "route = \"/catalog\"\nimage = \"./build/Dockerfile\"\nreplicas = 3",
    );
    let config = Config::parse(&with).unwrap();
    assert_eq!(
        (
            config.services[0].image.as_deref(),
            config.services[0].replicas
        ),
        (Some("build/Dockerfile"), 3)
    );
    for bad in ["replicas = 0", "replicas = 65", "replicas = -1"] {
        let e = err(&MINIMAL.replace(
            "route = \"/catalog\"",
            &format!("route = \"/catalog\"\n{bad}"),
        ));
        assert_eq!(
            (e.key.as_str(), e.line),
            ("service[0].replicas", Some(11)),
            "{bad}"
        );
    }
    let e = err(&MINIMAL.replace(
        "route = \"/catalog\"",
        "route = \"/catalog\"\nimage = \"../Dockerfile\"",
    ));
    assert_eq!(e.key, "service[0].image");
}

#[test]
fn protocol_and_request_timeout_are_read_with_their_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        (
            config.services[0].protocol,
            config.services[0].request_timeout
        ),
        (Protocol::Http1, None)
    );
    let with = MINIMAL.replace(
        "route = \"/catalog\"",
        "route = \"/catalog\"\nprotocol = \"grpc\"\nrequest_timeout = \"2500ms\"",
    );
    let config = Config::parse(&with).unwrap();
    assert_eq!(
        (
            config.services[0].protocol,
            config.services[0].request_timeout
        ),
        (Protocol::Grpc, Some(Duration::from_millis(2500)))
    );
    let h2c = MINIMAL.replace(
        "route = \"/catalog\"",
        "route = \"/catalog\"\nprotocol = \"h2c\"",
    );
    assert_eq!(
        Config::parse(&h2c).unwrap().services[0].protocol,
        Protocol::H2c
    );
}

#[test]
fn a_protocol_hifi_does_not_speak_is_refused_with_the_choices() {
    for bad in ["\"http2\"", "\"GRPC\"", "\"\"", "2"] {
        let e = err(&MINIMAL.replace(
            "route = \"/catalog\"",
            &format!("route = \"/catalog\"\nprotocol = {bad}"),
        ));
        assert_eq!(e.line, Some(11), "{bad}: {e}");
        if bad != "2" {
            assert_eq!(e.key, "service[0].protocol", "{bad}");
            assert!(
                e.message.contains("\"http1\", \"h2c\"") && e.message.contains("\"grpc\""),
                "names the choices: {e}"
            );
        }
    }
}

#[test]
fn a_request_timeout_must_be_a_duration_within_bounds() {
    for bad in ["\"30\"", "\"1.5s\"", "\"0s\"", "\"50ms\"", "\"2h\"", "30"] {
        let e = err(&MINIMAL.replace(
            "route = \"/catalog\"",
            &format!("route = \"/catalog\"\nrequest_timeout = {bad}"),
        ));
        assert_eq!(e.line, Some(11), "{bad}: {e}");
        if bad != "30" {
            assert_eq!(e.key, "service[0].request_timeout", "{bad}: {e}");
        }
    }
    let e = err(&MINIMAL.replace(
        "route = \"/catalog\"",
        "route = \"/catalog\"\nrequest_timeout = \"2h\"",
    ));
    assert!(
        e.message.contains("100ms") && e.message.contains("1h"),
        "{e}"
    );
    for good in ["100ms", "30s", "1h"] {
        let ok = MINIMAL.replace(
            "route = \"/catalog\"",
            &format!("route = \"/catalog\"\nrequest_timeout = \"{good}\""),
        );
        assert!(Config::parse(&ok).is_ok(), "{good}");
    }
}

#[test]
fn syntax_error_has_a_line() {
    let e = err("[project\nname = 1");
    assert_eq!(e.line, Some(1));
}

#[test]
fn unknown_stage_is_refused() {
    let e = err(&MINIMAL.replace("in-dev", "in-review"));
    assert_eq!(e.key, "environment[0].cards_from");
    assert!(e.message.contains("In Dev"), "lists the stages: {e}");
    assert_eq!(e.line, Some(15));
}

#[test]
fn promote_from_must_name_an_environment() {
    let e = err(&MINIMAL.replace("promote_from = \"dev\"", "promote_from = \"stage\""));
    assert_eq!(e.key, "environment[1].promote_from");
}

#[test]
fn promote_cycle_is_refused() {
    let source = MINIMAL.replace("cards_from = \"in-dev\"", "promote_from = \"prod\"");
    let e = err(&source);
    assert!(e.message.contains("cycle"), "{e}");
}

#[test]
fn self_promotion_is_a_cycle() {
    let e = err(&MINIMAL.replace("promote_from = \"dev\"", "promote_from = \"prod\""));
    assert!(e.message.contains("prod -> prod"), "{e}");
}

#[test]
fn both_or_neither_origin_is_refused() {
    let both = MINIMAL.replace(
        "cards_from = \"in-dev\"",
        "cards_from = \"in-dev\"\npromote_from = \"prod\"",
    );
    assert!(err(&both).message.contains("both"));
    let neither = MINIMAL.replace("cards_from = \"in-dev\"", "");
    assert!(err(&neither).message.contains("needs `cards_from`"));
}

#[test]
fn port_used_twice_is_refused() {
    let e = err(&MINIMAL.replace("8500", "8100"));
    assert_eq!(e.key, "environment[1].port");
    assert!(e.message.contains("8100"));
}

#[test]
fn route_used_twice_is_refused() {
    let twice = format!(
        "{MINIMAL}\n[[service]]\nname = \"other\"\npath = \"services/other\"\nrun = \"x\"\nhealth = \"/h\"\nroute = \"/catalog/\"\n"
    );
    let e = err(&twice);
    assert_eq!(e.key, "service[1].route");
}

#[test]
fn paths_outside_the_repository_are_refused() {
    for bad in ["../elsewhere", "/etc", "services/../../x"] {
        let e = err(&MINIMAL.replace("services/catalog", bad));
        assert_eq!(e.key, "service[0].path", "{bad}");
    }
    let ok = Config::parse(&MINIMAL.replace("services/catalog", "./services//catalog/")).unwrap();
    assert_eq!(ok.services[0].path, "services/catalog");
}

#[test]
fn interpolation_fills_names_and_refuses_unknown_ones() {
    let lookup = |name: &str| (name == "KEY").then(|| "s3cret".to_string());
    assert_eq!(interpolate("a-${KEY}-b", lookup), Ok("a-s3cret-b".into()));
    assert_eq!(interpolate("plain $KEY", lookup), Ok("plain $KEY".into()));
    assert!(
        interpolate("${MISSING}", lookup)
            .unwrap_err()
            .contains("MISSING")
    );
    assert!(interpolate("${KEY", lookup).is_err());
}

#[test]
fn bad_values_are_refused() {
    assert_eq!(
        err(&MINIMAL.replace("\"5s\"", "\"5 seconds\"")).key,
        "environment[1].canary.interval"
    );
    assert_eq!(
        err(&MINIMAL.replace("[10, 50]", "[50, 10]")).key,
        "environment[1].canary.steps"
    );
    assert_eq!(
        err(&MINIMAL.replace("\"canary\"", "\"yolo\"")).key,
        "environment[1].strategy"
    );
    assert_eq!(
        err(&MINIMAL.replace("port = 8100", "port = 70000")).key,
        "environment[0].port"
    );
    assert_eq!(
        err(&MINIMAL.replace("name = \"catalog\"", "name = \"Cat Alog\"")).key,
        "service[0].name"
    );
    assert_eq!(
        err(&MINIMAL.replace("MODE =", "PORT =")).key,
        "environment[1].vars.PORT"
    );
}

#[test]
fn runtimes_default_to_local_docker_is_accepted_and_unknown_ones_are_refused() {
    let config = Config::parse(MINIMAL).unwrap();
    assert!(
        config
            .environments
            .iter()
            .all(|e| e.runtime == RuntimeKind::Local)
    );
    let with = MINIMAL.replace("name = \"shop\"", "name = \"shop\"\nruntime = \"local\"");
    assert_eq!(
        Config::parse(&with).unwrap().environments[0].runtime,
        RuntimeKind::Local
    );
    // Containers need an image of every service.
    let docker = MINIMAL.replace("port = 8100", "port = 8100\nruntime = \"docker\"");
    let e = err(&docker);
    assert_eq!(e.key, "environment[0].runtime");
    assert!(e.message.contains("no `image`"), "{e}");
    let docker = docker.replace(
        "route = \"/catalog\"",
        "route = \"/catalog\"\nimage = \"Dockerfile\"",
    );
    let config = Config::parse(&docker).unwrap();
    assert_eq!(config.environments[0].runtime, RuntimeKind::Docker);
    assert_eq!(config.environments[0].runtime.as_str(), "docker");
    assert_eq!(config.environments[1].runtime, RuntimeKind::Local);
    let e = err(&MINIMAL.replace("name = \"shop\"", "name = \"shop\"\nruntime = \"podman\""));
    assert_eq!((e.key.as_str(), e.line), ("project.runtime", Some(4)));
    let e = err(&MINIMAL.replace("port = 8100", "port = 8100\nruntime = \"kubernetes\""));
    assert_eq!(e.key, "environment[0].runtime");
    assert!(e.message.contains("no `image`"), "{e}");
}

/// MINIMAL with an image for the service, prod on Kubernetes, and `extra`
/// after prod's `[environment.vars]` table.
fn on_kubernetes(registry: &str, extra: &str) -> String {
    MINIMAL
        .replace(
            "route = \"/catalog\"",
            "route = \"/catalog\"\nimage = \"Dockerfile\"",
        )
        .replace(
            "strategy = \"canary\"",
            "strategy = \"canary\"\nruntime = \"kubernetes\"",
        )
        + registry
        + extra
}

#[test]
fn kubernetes_environments_get_a_namespace_and_need_a_registry() {
    let registry = "\n[registry]\nurl = \"registry.example.com/shop\"\n";
    let config = Config::parse(&on_kubernetes(registry, "")).unwrap();
    let prod = config.environment("prod").unwrap();
    assert_eq!(prod.runtime, RuntimeKind::Kubernetes);
    assert!(prod.runtime.scales_slots() && prod.runtime.runs_images());
    assert_eq!(prod.runtime.instances_per_slot(3), 1);
    assert_eq!(RuntimeKind::Docker.instances_per_slot(3), 3);
    let k8s = prod.kubernetes.as_ref().unwrap();
    assert_eq!(k8s.namespace, "shop-prod");
    assert_eq!(k8s.context, None);
    assert_eq!(k8s.expose, Expose::ClusterIp);
    assert_eq!(config.environment("dev").unwrap().kubernetes, None);
    assert_eq!(
        config.registry.as_ref().unwrap().url,
        "registry.example.com/shop"
    );

    let settings = "[environment.kubernetes]\ncontext = \"prod-cluster\"\nnamespace = \"shop-live\"\nexpose = \"LoadBalancer\"\n";
    let source = on_kubernetes("", settings) + registry;
    let config = Config::parse(&source).unwrap();
    let k8s = config
        .environment("prod")
        .unwrap()
        .kubernetes
        .clone()
        .unwrap();
    assert_eq!(k8s.context.as_deref(), Some("prod-cluster"));
    assert_eq!(k8s.namespace, "shop-live");
    assert_eq!(k8s.expose, Expose::LoadBalancer);

    // Without a registry, the cluster could pull nothing.
    let e = err(&on_kubernetes("", ""));
    assert_eq!(e.key, "environment[1].runtime");
    assert!(e.message.contains("[registry]"), "{e}");
}

#[test]
fn kubernetes_settings_are_checked_with_file_line_and_key() {
    let registry = "\n[registry]\nurl = \"registry.example.com/shop\"\n";
    let with = |settings: &str| {
        on_kubernetes("", &format!("[environment.kubernetes]\n{settings}\n")) + registry
    };
    let e = err(&with("namespace = \"Shop_Prod\""));
    assert_eq!(e.key, "environment[1].kubernetes.namespace");
    assert_eq!(e.line, Some(31));
    assert!(e.message.contains("namespace name"), "{e}");
    let e = err(&with("expose = \"Ingress\""));
    assert_eq!(e.key, "environment[1].kubernetes.expose");
    assert!(e.message.contains("LoadBalancer"), "{e}");
    let e = err(&with("cluster = \"x\""));
    assert!(e.message.contains("cluster"), "{e}");
    let e = err(&with("context = \"\""));
    assert_eq!(e.key, "environment[1].kubernetes.context");

    // Two environments in one namespace of one cluster would overwrite
    // each other's objects; in two clusters they are apart.
    let both = |dev: &str| {
        with("namespace = \"shop\"").replace(
            "cards_from = \"in-dev\"",
            &format!(
                "cards_from = \"in-dev\"\nruntime = \"kubernetes\"\n[environment.kubernetes]\n{dev}"
            ),
        )
    };
    let e = err(&both("namespace = \"shop\""));
    assert_eq!(e.key, "environment[1].kubernetes");
    assert!(e.message.contains("both run in namespace `shop`"), "{e}");
    Config::parse(&both("namespace = \"shop\"\ncontext = \"other-cluster\"")).unwrap();

    // Resources: known names, Kubernetes quantities, requests within limits.
    let config = Config::parse(&with(
        "requests = { cpu = \"0.5\", memory = \"128Mi\" }\nlimits = { cpu = \"1\", memory = \"1G\" }",
    ))
    .unwrap();
    let resources = &config
        .environment("prod")
        .unwrap()
        .kubernetes
        .as_ref()
        .unwrap()
        .resources;
    assert_eq!(resources.requests["cpu"], "0.5");
    assert_eq!(resources.limits["memory"], "1G");
    let e = err(&with("requests = { gpu = \"1\" }"));
    assert_eq!(e.key, "environment[1].kubernetes.requests");
    assert!(e.message.contains("unknown resource `gpu`"), "{e}");
    for bad in ["1.5x", "-1", "", "1e3", ".5", "1..2", "Mi"] {
        let e = err(&with(&format!("limits = {{ memory = \"{bad}\" }}")));
        assert_eq!(e.key, "environment[1].kubernetes.limits.memory", "{bad}");
        assert!(
            e.message.contains("not a Kubernetes quantity"),
            "{bad}: {e}"
        );
    }
    let e = err(&with(
        "requests = { memory = \"2Gi\" }\nlimits = { memory = \"2G\" }",
    ));
    assert_eq!(e.key, "environment[1].kubernetes.requests.memory");
    assert!(e.message.contains("above its limit `2G`"), "{e}");

    // The table belongs to Kubernetes environments only.
    let e = err(&(MINIMAL.to_owned() + "[environment.kubernetes]\nnamespace = \"x\"\n"));
    assert_eq!(e.key, "environment[1].kubernetes");
    assert!(e.message.contains("runtime = \"kubernetes\""), "{e}");

    for (url, why) in [
        ("https://registry.example.com/shop", "scheme"),
        ("registry.example.com", "repository path"),
        ("registry.example.com/Shop", "lowercase"),
        ("registry.example.com/shop:1.0", "lowercase"),
    ] {
        let e = err(&on_kubernetes(
            &format!("\n[registry]\nurl = \"{url}\"\n"),
            "",
        ));
        assert_eq!(e.key, "registry.url", "{url}");
        assert!(e.message.contains(why), "{url}: {e}");
    }

    // What does not reach a cluster yet is refused up front.
    let smoke = on_kubernetes(registry, "").replace(
        "strategy = \"canary\"",
        "strategy = \"canary\"\nsmoke = \"curl -fsS $HIFI_CANDIDATE_URL/\"",
    );
    let e = err(&smoke);
    assert_eq!(e.key, "environment[1].smoke");
    assert!(e.message.contains("not supported yet"), "{e}");

    // A service whose name clashes with the objects hifi makes.
    let clash =
        on_kubernetes(registry, "").replace("name = \"catalog\"", "name = \"catalog-blue\"");
    let e = err(&clash);
    assert!(e.message.contains("-blue"), "{e}");
}

#[test]
fn promote_from_takes_a_list_and_hotfix_of_names_the_environment_it_fixes() {
    let source = MINIMAL.replace(
        "promote_from = \"dev\"",
        "promote_from = [\"dev\", \"hotfix\"]",
    ) + "\n[[environment]]\nname = \"hotfix\"\nport = 8600\nhotfix_of = \"prod\"\nwindows = [\"Mon-Fri 09:00-16:00 Europe/Zurich\"]\n";
    let config = Config::parse(&source).unwrap();
    let prod = config.environment("prod").unwrap();
    assert_eq!(prod.promote_from(), ["dev", "hotfix"]);
    assert_eq!(prod.describe_origin(), "promotes from dev or hotfix");
    let hotfix = config.environment("hotfix").unwrap();
    assert_eq!(hotfix.hotfix_of(), Some("prod"));
    assert_eq!(hotfix.windows.len(), 1);
    assert_eq!(
        config
            .production()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["prod"]
    );
    assert!(
        config.follow_releases,
        "cards follow their releases by default"
    );
}

#[test]
fn hotfix_environments_and_windows_are_checked() {
    let with = |extra: &str| {
        format!("{MINIMAL}\n[[environment]]\nname = \"hotfix\"\nport = 8600\n{extra}\n")
    };
    let e = err(&with("hotfix_of = \"qa\""));
    assert_eq!(e.key, "environment[2].hotfix_of");
    assert!(e.message.contains("names no environment"), "{e}");
    let e = err(&with("hotfix_of = \"prod\"\npromote_from = \"dev\""));
    assert!(
        e.message.contains("both `promote_from` and `hotfix_of`"),
        "{e}"
    );
    let e = err(&with("hotfix_of = \"hotfix\""));
    assert!(e.message.contains("cannot fix itself"), "{e}");
    let e = err(&with(
        "hotfix_of = \"prod\"\nwindows = [\"Mon-Fri 09:00-16:00 Mars/Olympus\"]",
    ));
    assert_eq!(e.key, "environment[2].windows[0]");
    assert!(e.message.contains("IANA"), "{e}");
    assert_eq!(e.line, Some(33));
    let e = err(&with("hotfix_of = \"prod\"\nwindows = [\"whenever\"]"));
    assert!(e.message.contains("DAYS HH:MM-HH:MM ZONE"), "{e}");
    let e = err(&MINIMAL.replace("promote_from = \"dev\"", "promote_from = []"));
    assert!(e.message.contains("at least one"), "{e}");
}

#[test]
fn a_cycle_through_a_list_is_a_cycle() {
    let source = MINIMAL.replace("cards_from = \"in-dev\"", "promote_from = [\"qa\"]")
        + "\n[[environment]]\nname = \"qa\"\nport = 8700\npromote_from = [\"prod\"]\n";
    let e = err(&source);
    assert!(e.message.contains("cycle"), "{e}");
}

#[test]
fn kubernetes_quantities_have_their_values() {
    use super::parse_quantity;
    for (text, value) in [
        ("250m", 0.25),
        ("2", 2.0),
        ("1.5", 1.5),
        ("1k", 1e3),
        ("1Ki", 1024.0),
        ("512Mi", 512.0 * 1024.0 * 1024.0),
        ("1G", 1e9),
        ("1Gi", 1024f64.powi(3)),
    ] {
        assert_eq!(parse_quantity(text), Ok(value), "{text}");
    }
}
