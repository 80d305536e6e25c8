//! The dashboard's pictures and its first-load figures, both in a real
//! headless Chromium on a real project:
//!
//! - `screenshots` takes the board, the pipeline and a live canary of a
//!   small shop; with `HIFI_SCREENSHOTS=DIR` it writes them there as PNGs
//!   (`bench/dashboard/screenshots.sh` writes `docs/screenshots/`).
//! - `first_load` (ignored; `bench/dashboard/run.sh`) loads the board of
//!   200 cards and 10 environments five times and prints the bytes shipped
//!   and the median time until the board is shown.

use fantoccini::Client;
use hifi_app::deploy::Start;
use hifi_core::{DeploymentState, EventKind, Health, Slot, Verdict};
use hifi_testkit::{Config, Env, Service, loopback_port};
use serde_json::{Value, json};

use super::browser::{open, run, sign_in, wait_for, with_browsers};
use crate::util::{Server, goes_live, root};

fn shop() -> String {
    Config::new("shop")
        .service(Service::new("api").route("/"))
        .environment(Env::cards("dev", loopback_port(), "In Dev"))
        .environment(
            Env::promote("uat", loopback_port(), "dev")
                .strategy("canary")
                .canary("steps = [10, 50, 100]\ninterval = \"30s\"\nmax_error_rate = 0.05\nmax_p99_ms = 300"),
        )
        .environment(Env::promote("prod", loopback_port(), "uat").approvals(2))
        .render()
}

fn instance(
    store: &mut hifi_store::Store,
    audit: &hifi_store::Audit,
    env: &str,
    slot: Slot,
    replica: u16,
    release: &hifi_core::ReleaseId,
    health: Health,
) {
    let row = hifi_store::InstanceRow {
        env: env.into(),
        slot,
        service: "api".into(),
        replica,
        release: release.clone(),
        handle: "{}".into(),
        health,
        restarts: 0,
        updated_at: audit.at,
    };
    store
        .put_instance(audit, &row, EventKind::InstanceHealthy, "healthy")
        .unwrap();
}

/// A shop with cards on the board, dev live, and uat in the middle of a
/// canary that is starting to go wrong.
fn staged_shop(s: &Server) {
    let mut p = s.project();
    p.add_card(&root(), "PAY-1", "feature/a", "Pay by card", false)
        .unwrap();
    p.move_card(&root(), "PAY-1", "In Dev").unwrap();
    p.compose(&root(), "dev", &mut |_| {}).unwrap();
    let dev = p.deploy(&root(), "dev", None, Start::default()).unwrap();
    goes_live(&p, "dev", dev.deployment.id);
    for (id, title, stage) in [
        ("PAY-2", "Refunds from the order page", "Ready for Dev"),
        ("PAY-3", "Receipts by mail", "Ready for Dev"),
        ("CAT-4", "Search suggestions", "Ready for Test"),
        ("CAT-5", "Faster category pages", "Ready for PO Sign-Off"),
        ("OPS-6", "Structured access logs", "Done"),
    ] {
        let branch = format!("feature/{}", id.to_lowercase());
        p.add_card(&root(), id, &branch, title, false).unwrap();
        p.move_card(&root(), id, stage).unwrap();
    }

    let mut store = hifi_store::Store::open(&p.layout().db()).unwrap();
    let audit = hifi_store::Audit {
        actor: "hifi".into(),
        at: p.now(),
    };
    let flag = hifi_store::ConflictFlag {
        env: "dev".into(),
        card: "PAY-3".parse().unwrap(),
        with_cards: vec!["PAY-1".parse().unwrap()],
        files: vec!["services/api/app.py".into()],
        at: p.now(),
    };
    store
        .record_conflict(&audit, &flag, "PAY-3 conflicts with PAY-1")
        .unwrap();
    let release = dev.deployment.release.clone();
    instance(
        &mut store,
        &audit,
        "dev",
        Slot::Blue,
        0,
        &release,
        Health::Healthy,
    );
    instance(
        &mut store,
        &audit,
        "dev",
        Slot::Blue,
        1,
        &release,
        Health::Healthy,
    );

    let uat = p.promote(&root(), "dev", "uat", Start::default()).unwrap();
    let mut routing = store.routing("uat").unwrap();
    routing.begin(release.clone()).unwrap();
    routing.weight = 10.0;
    for state in [
        DeploymentState::Building,
        DeploymentState::Starting,
        DeploymentState::Verifying,
    ] {
        let verifying = state == DeploymentState::Verifying;
        store
            .update_deployment(
                &audit,
                uat.deployment.id,
                hifi_store::Update {
                    state: Some(state),
                    slot: Some(Slot::Blue),
                    step: verifying.then_some(0),
                    step_started_at: verifying.then(|| p.now()),
                    weight: verifying.then_some(10.0),
                    routing: verifying.then_some(&routing),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    instance(
        &mut store,
        &audit,
        "uat",
        Slot::Blue,
        0,
        &release,
        Health::Healthy,
    );
    instance(
        &mut store,
        &audit,
        "uat",
        Slot::Blue,
        1,
        &release,
        Health::Unhealthy,
    );
    let t0 = p.now();
    for (i, (errors, p99)) in [(1, 110.0), (2, 135.0), (4, 170.0), (9, 240.0), (23, 330.0)]
        .into_iter()
        .enumerate()
    {
        let requests = 420;
        store
            .record_analysis(&hifi_store::Analysis {
                deployment: uat.deployment.id,
                step: 0,
                weight: 10.0,
                requests,
                errors,
                error_ratio: errors as f64 / requests as f64,
                p50_ms: p99 / 4.0,
                p99_ms: p99,
                verdict: Verdict::Pass,
                at: t0 + i as i64 * 30_000,
            })
            .unwrap();
    }
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
    if let Ok(dir) = std::env::var("HIFI_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        eprintln!("wrote {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_board_the_pipeline_and_a_live_canary() {
    let s = Server::start_with(&shop()).await;
    staged_shop(&s);
    let stop = tokio_util::sync::CancellationToken::new();
    let socket = s.project().layout().proxy_socket();
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let _proxy_state = super::live::proxy_with_traffic(socket, "uat", 30.0, stop.clone()).await;
    with_browsers(1, |b| async move {
        let c = &b[0];
        sign_in(c, &s.url, &s.operator).await;
        wait_for(
            c,
            "[data-stage=\"In Dev\"] [data-card=\"PAY-1\"] [data-live=\"dev\"]",
        )
        .await;
        wait_for(c, "[data-card=\"PAY-3\"].conflict .flag").await;
        wait_for(c, "#live.on").await;
        shot(c, "board").await;
        open(c, &s.url, "#/pipeline").await;
        wait_for(c, "section[data-env=\"uat\"] .deployment[data-deployment]").await;
        shot(c, "pipeline").await;
        open(c, &s.url, "#/canary").await;
        wait_for(
            c,
            "section.canary[data-env=\"uat\"] svg[data-metric=\"p99_ms\"][data-points=\"5\"]",
        )
        .await;
        wait_for(c, "section.canary[data-env=\"uat\"] .forecast.fail").await;
        wait_for(
            c,
            "svg[data-metric=\"live-p99_ms\"] path[data-series=\"api blue (candidate)\"][data-samples=\"4\"]",
        )
        .await;
        shot(c, "canary").await;
    })
    .await;
    stop.cancel();
}

/// 10 environments in a chain and 200 cards over the stages.
fn large(s: &Server) {
    let mut p = s.project();
    let stages = hifi_core::workflow::DEFAULT_STAGES;
    for i in 0..200 {
        let id = format!("PAY-{}", i + 1);
        p.add_card(
            &root(),
            &id,
            &format!("feature/pay-{}", i + 1),
            &format!("Change number {} of the payment flow", i + 1),
            false,
        )
        .unwrap();
        let stage = stages[i % stages.len()];
        if stage != stages[0] {
            p.move_card(&root(), &id, stage).unwrap();
        }
    }
}

fn large_config() -> String {
    let names = [
        "dev", "qa", "uat", "staging", "perf", "prep", "demo", "preprod", "prod-eu", "prod",
    ];
    let mut config = Config::new("shop").service(Service::new("api").route("/"));
    for (i, name) in names.iter().enumerate() {
        config = config.environment(if i == 0 {
            Env::cards(name, loopback_port(), "In Dev")
        } else {
            Env::promote(name, loopback_port(), names[i - 1])
        });
    }
    config.render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/dashboard/run.sh"]
async fn first_load() {
    let s = Server::start_with(&large_config()).await;
    large(&s);
    let started = std::time::Instant::now();
    s.get("board", &s.viewer).await.expect(200);
    println!("GET /api/v1/board alone: {:?}", started.elapsed());
    with_browsers(1, |b| async move {
        let c = &b[0];
        sign_in(c, &s.url, &s.viewer).await;
        let mut shown = Vec::new();
        let mut last = Value::Null;
        for _ in 0..5 {
            c.goto("about:blank").await.unwrap();
            c.goto(&format!("{}/#/board", s.url)).await.unwrap();
            wait_for(c, "#page[data-page=\"board\"] [data-card=\"PAY-200\"]").await;
            let figures = run(
                c,
                r#"const nav = performance.getEntriesByType('navigation')[0];
                const mark = performance.getEntriesByName('board-shown')[0];
                const parts = [['html', nav.name, nav.transferSize, nav.encodedBodySize]];
                for (const r of performance.getEntriesByType('resource')) {
                  if (r.name.endsWith('/api/v1/events')) continue;
                  const kind = r.name.endsWith('.js') ? 'js' : r.name.endsWith('.css') ? 'css' : 'api';
                  parts.push([kind, r.name, r.transferSize, r.encodedBodySize]);
                }
                return { shown: mark ? mark.startTime : null, parts };"#,
                vec![],
            )
            .await;
            shown.push(figures["shown"].as_f64().expect("the board-shown mark"));
            last = figures;
        }
        shown.sort_by(f64::total_cmp);
        let mut by_kind = std::collections::BTreeMap::<String, (u64, u64)>::new();
        for part in last["parts"].as_array().unwrap() {
            let entry = by_kind.entry(part[0].as_str().unwrap().to_string()).or_default();
            entry.0 += part[2].as_u64().unwrap_or(0);
            entry.1 += part[3].as_u64().unwrap_or(0);
        }
        let total: u64 = by_kind.values().map(|v| v.0).sum();
        println!("dashboard first load: 200 cards, 10 environments, 5 runs");
        for (kind, (transfer, body)) in &by_kind {
            println!("  {kind:<5} {transfer:>8} bytes transferred ({body} bytes of body)");
        }
        println!("  total {total:>8} bytes transferred");
        println!(
            "  board shown after {:.0} ms (median; runs: {})",
            shown[2],
            shown.iter().map(|t| format!("{t:.0}")).collect::<Vec<_>>().join(", ")
        );
        println!("  parts: {}", json!(last["parts"]));
    })
    .await;
}
