//! The dashboard in a real headless Chromium: signing in, dragging a card
//! and watching it move in a second browser without a reload, approving as
//! an approver and promoting as an operator through the confirmation, a
//! canary's chart following its judged windows, and a viewer's buttons
//! disabled with the reason.

use fantoccini::{Client, Locator};
use hifi_app::deploy::Start;
use hifi_app::{Actor, Role};
use hifi_core::{DeploymentState, Slot, Verdict};
use hifi_testkit::{Config, Env, Service, loopback_port};
use serde_json::json;

use super::browser::{drag_card, open, run, sign_in, wait_for, with_browsers};
use crate::util::{Server, root};

async fn click(c: &Client, css: &str) {
    wait_for(c, css).await.click().await.unwrap();
}

/// Clicks a pipeline button and confirms in the dialog.
async fn confirm(c: &Client, env: &str, action: &str) {
    click(
        c,
        &format!("section[data-env=\"{env}\"] button[data-action=\"{action}\"]:not([disabled])"),
    )
    .await;
    wait_for(c, "dialog#confirm[open]").await;
    click(c, "#confirm-ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_shows_the_board_and_the_cookie_stays_out_of_reach() {
    let s = Server::start().await;
    with_browsers(1, |b| async move {
        let c = &b[0];
        c.goto(&format!("{}/", s.url)).await.unwrap();
        wait_for(c, "#sign-in").await;
        // A wrong token is refused on the form, without echoing it.
        wait_for(c, "#token")
            .await
            .send_keys("hifi_nope")
            .await
            .unwrap();
        click(c, "#sign-in button[type=submit]").await;
        let error = wait_for(c, "#sign-in-error").await.text().await.unwrap();
        assert!(error.contains("not a hifi token"), "{error}");

        sign_in(c, &s.url, &s.viewer).await;
        wait_for(c, "[data-stage=\"Ready for Dev\"]").await;
        let who = wait_for(c, "#who").await.text().await.unwrap();
        assert!(who.contains("vic") && who.contains("viewer"), "{who}");
        // HttpOnly: the page's scripts cannot read the session.
        assert_eq!(run(c, "return document.cookie", vec![]).await, json!(""));
        let html = c.source().await.unwrap();
        assert!(!html.contains(&s.viewer), "the page shows the token");
        wait_for(c, "#live.on").await;

        click(c, "#sign-out").await;
        wait_for(c, "#sign-in").await;
        c.goto(&format!("{}/", s.url)).await.unwrap();
        wait_for(c, "#sign-in").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_dragged_to_another_stage_moves_in_a_second_browser_without_a_reload() {
    let s = Server::start().await;
    s.project()
        .add_card(&root(), "PAY-1", "feature/a", "Pay by card", false)
        .unwrap();
    with_browsers(2, |b| async move {
        let (dev, watcher) = (&b[0], &b[1]);
        sign_in(dev, &s.url, &s.developer).await;
        sign_in(watcher, &s.url, &s.viewer).await;
        for c in [dev, watcher] {
            wait_for(c, "[data-stage=\"Ready for Dev\"] [data-card=\"PAY-1\"]").await;
        }
        // A viewer may not move cards: nothing to drag.
        wait_for(watcher, "[data-card=\"PAY-1\"][draggable=\"false\"]").await;
        run(watcher, "window.notReloaded = true", vec![]).await;
        wait_for(watcher, "#live.on").await;

        drag_card(dev, "PAY-1", "In Dev").await;
        wait_for(watcher, "[data-stage=\"In Dev\"] [data-card=\"PAY-1\"]").await;
        assert_eq!(
            run(watcher, "return window.notReloaded === true", vec![]).await,
            json!(true),
            "the second browser reloaded instead of following the event stream"
        );
        let board = s.get("board", &s.viewer).await.expect(200);
        assert_eq!(board["cards"][0]["stage"], "In Dev", "{board}");

        // Without a mouse: the arrow keys move a focused card.
        let card = wait_for(dev, "[data-stage=\"In Dev\"] [data-card=\"PAY-1\"]").await;
        card.send_keys(&fantoccini::key::Key::Right.to_string())
            .await
            .unwrap();
        wait_for(
            watcher,
            "[data-stage=\"Ready for Test\"] [data-card=\"PAY-1\"]",
        )
        .await;

        // A composition that failed on a conflict flags the card, live.
        let p = s.project();
        let mut store = hifi_store::Store::open(&p.layout().db()).unwrap();
        let audit = hifi_store::Audit {
            actor: "dora".into(),
            at: p.now(),
        };
        let flag = hifi_store::ConflictFlag {
            env: "dev".into(),
            card: "PAY-1".parse().unwrap(),
            with_cards: Vec::new(),
            files: vec!["services/api/app.py".into()],
            at: p.now(),
        };
        store
            .record_conflict(&audit, &flag, "PAY-1 conflicts")
            .unwrap();
        let text = wait_for(watcher, "[data-card=\"PAY-1\"].conflict .flag")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("dev") && text.contains("services/api/app.py"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_signs_off_through_the_confirmation() {
    let s = Server::start().await;
    let release = s.verified_in_dev();
    with_browsers(1, |b| async move {
        let c = &b[0];
        sign_in(c, &s.url, &s.approver).await;
        open(c, &s.url, "#/pipeline").await;
        wait_for(c, "section[data-env=\"prod\"] .approvals[data-have=\"0\"]").await;
        // An approver may not promote.
        let promote = wait_for(
            c,
            "section[data-env=\"prod\"] button[data-action=\"promote\"]",
        )
        .await;
        assert_eq!(
            promote.attr("disabled").await.unwrap().as_deref(),
            Some("true")
        );

        // Cancelling the confirmation does nothing.
        click(
            c,
            "section[data-env=\"prod\"] button[data-action=\"approve\"]:not([disabled])",
        )
        .await;
        wait_for(c, "dialog#confirm[open]").await;
        click(c, "#confirm-cancel").await;
        confirm(c, "prod", "approve").await;
        wait_for(c, "section[data-env=\"prod\"] .approvals[data-have=\"1\"]").await;
        let detail = s
            .get(&format!("releases/{release}"), &s.viewer)
            .await
            .expect(200);
        let approvals = detail["approvals"].as_array().unwrap();
        assert_eq!(approvals.len(), 1, "{detail}");
        assert_eq!(approvals[0]["actor"], "po");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_promotes_through_the_confirmation() {
    let s = Server::start().await;
    let release = s.verified_in_dev();
    let po = Actor {
        name: "po".into(),
        role: Role::Approver,
    };
    s.project().approve(&po, "prod", None).unwrap();
    with_browsers(1, |b| async move {
        let c = &b[0];
        sign_in(c, &s.url, &s.operator).await;
        open(c, &s.url, "#/pipeline").await;
        confirm(c, "prod", "promote").await;
        wait_for(c, "section[data-env=\"prod\"] .deployment[data-deployment]").await;
        let prod = s.get("environments/prod", &s.viewer).await.expect(200);
        let d = &prod["environments"][0]["deployment"];
        assert_eq!(d["release"], release.as_str(), "{prod}");
        assert_eq!(d["actor"], "otto");
        // The release page shows its fidelity chain.
        open(c, &s.url, &format!("#/release/{release}")).await;
        let chain = wait_for(c, "section.release").await.text().await.unwrap();
        for part in [
            "composition",
            "artifacts",
            "verified",
            "approvals",
            "po",
            "dev",
        ] {
            assert!(chain.contains(part), "{part} missing from {chain}");
        }
        // History says who did what; the diff compares two environments.
        open(c, &s.url, "#/history?env=prod").await;
        let history = wait_for(c, "table.history").await.text().await.unwrap();
        assert!(
            history.contains("otto") && history.contains("pending"),
            "{history}"
        );
        let audit = wait_for(c, "table.audit").await.text().await.unwrap();
        assert!(
            audit.contains("release.approved") && audit.contains("po"),
            "{audit}"
        );
        open(c, &s.url, "#/diff?from=dev&to=prod").await;
        let diff = wait_for(c, "#page[data-page=\"diff\"]")
            .await
            .text()
            .await
            .unwrap();
        assert!(diff.contains("services") && diff.contains("vars"), "{diff}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_buttons_are_disabled_and_say_why() {
    let s = Server::start().await;
    s.verified_in_dev();
    with_browsers(1, |b| async move {
        let c = &b[0];
        sign_in(c, &s.url, &s.viewer).await;
        open(c, &s.url, "#/pipeline").await;
        wait_for(c, "section[data-env=\"prod\"] button[data-action=\"promote\"]").await;
        let buttons = run(
            c,
            "return [...document.querySelectorAll('button[data-action]')].map(b => [b.dataset.action, b.disabled, b.title])",
            vec![],
        )
        .await;
        let buttons = buttons.as_array().unwrap();
        assert!(buttons.len() >= 8, "{buttons:?}");
        for b in buttons {
            assert_eq!(b[1], true, "enabled for a viewer: {b}");
            assert!(
                b[2].as_str().unwrap().starts_with("your role (viewer) may not"),
                "{b}"
            );
        }
    })
    .await;
}

/// dev deploys by canary (10 %, 50 %, then all).
fn canary_config() -> String {
    Config::new("shop")
        .service(Service::new("api").route("/"))
        .environment(
            Env::cards("dev", loopback_port(), "In Dev")
                .strategy("canary")
                .canary("steps = [10, 50, 100]\ninterval = \"30s\"\nmax_error_rate = 0.05\nmax_p99_ms = 300"),
        )
        .render()
}

/// A canary deployment in dev, at its first step, as the control plane
/// records it; returns its id.
pub fn canary_in_progress(s: &Server) -> i64 {
    let mut p = s.project();
    p.compose(&root(), "dev", &mut |_| {}).unwrap();
    let started = p.deploy(&root(), "dev", None, Start::default()).unwrap();
    let mut store = hifi_store::Store::open(&p.layout().db()).unwrap();
    let audit = hifi_store::Audit {
        actor: "hifi".into(),
        at: p.now(),
    };
    for state in [
        DeploymentState::Building,
        DeploymentState::Starting,
        DeploymentState::Verifying,
    ] {
        let verifying = state == DeploymentState::Verifying;
        store
            .update_deployment(
                &audit,
                started.deployment.id,
                hifi_store::Update {
                    state: Some(state),
                    slot: Some(Slot::Blue),
                    step: verifying.then_some(0),
                    step_started_at: verifying.then(|| p.now()),
                    weight: verifying.then_some(10.0),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    started.deployment.id
}

/// Records a judged window of the canary `id`, as its judge would.
pub fn judged(s: &Server, id: i64, at: i64, errors: i64, p99_ms: f64) {
    let p = s.project();
    let mut store = hifi_store::Store::open(&p.layout().db()).unwrap();
    let requests = 400;
    store
        .record_analysis(&hifi_store::Analysis {
            deployment: id,
            step: 0,
            weight: 10.0,
            requests,
            errors,
            error_ratio: errors as f64 / requests as f64,
            p50_ms: p99_ms / 3.0,
            p99_ms,
            verdict: Verdict::Extend,
            at,
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_chart_follows_the_judged_windows_with_its_thresholds() {
    let s = Server::start_with(&canary_config()).await;
    let id = canary_in_progress(&s);
    let t0 = s.project().now();
    judged(&s, id, t0, 2, 120.0);
    with_browsers(1, |b| async move {
        let c = &b[0];
        sign_in(c, &s.url, &s.viewer).await;
        open(c, &s.url, "#/canary").await;
        let section = "section.canary[data-env=\"dev\"][data-in-progress=\"true\"]";
        wait_for(
            c,
            &format!("{section} svg[data-metric=\"error_ratio\"][data-points=\"1\"]"),
        )
        .await;
        wait_for(
            c,
            &format!("{section} svg[data-metric=\"p99_ms\"] line.limit"),
        )
        .await;
        let limit = wait_for(
            c,
            &format!("{section} svg[data-metric=\"p99_ms\"] .limit-label"),
        )
        .await
        .text()
        .await
        .unwrap();
        assert_eq!(limit, "limit 300 ms");
        let step = wait_for(c, &format!("{section} .step"))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            step.contains("step 1 of 3: 10 % of users, next 50 %"),
            "{step}"
        );
        wait_for(c, &format!("{section} .forecast.pass")).await;

        // A worse window arrives: the chart grows and the forecast turns.
        judged(&s, id, t0 + 30_000, 40, 450.0);
        wait_for(
            c,
            &format!("{section} svg[data-metric=\"error_ratio\"][data-points=\"2\"]"),
        )
        .await;
        wait_for(
            c,
            &format!("{section} svg[data-metric=\"p99_ms\"][data-points=\"2\"]"),
        )
        .await;
        let forecast = wait_for(c, &format!("{section} .forecast.fail"))
            .await
            .text()
            .await
            .unwrap();
        assert!(forecast.contains("fail → abort"), "{forecast}");
        assert!(
            c.find(Locator::Css("svg path.series.slot-blue"))
                .await
                .is_ok()
        );
        // Without a proxy there are no live figures, and the page says why.
        wait_for(c, &format!("{section} .live-note")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_page_draws_live_figures_per_service_and_slot_over_time() {
    let s = Server::start_with(&canary_config()).await;
    canary_in_progress(&s);
    let stop = tokio_util::sync::CancellationToken::new();
    let socket = s.project().layout().proxy_socket();
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let _proxy_state = super::live::proxy_with_traffic(socket, "dev", 50.0, stop.clone()).await;
    with_browsers(1, |b| async move {
        let c = &b[0];
        sign_in(c, &s.url, &s.viewer).await;
        open(c, &s.url, "#/canary").await;
        let chart = "section.canary[data-env=\"dev\"] svg[data-metric=\"live-error_ratio\"]";
        // Samples gather as the page looks again every 2 s.
        wait_for(
            c,
            &format!("{chart} path[data-series=\"api blue (candidate)\"][data-samples=\"2\"]"),
        )
        .await;
        wait_for(
            c,
            &format!("{chart} path[data-series=\"api green (stable)\"]"),
        )
        .await;
        wait_for(
            c,
            "svg[data-metric=\"live-p99_ms\"] path[data-series=\"api blue (candidate)\"]",
        )
        .await;
        let live = s.get("canary", &s.viewer).await.expect(200);
        let figures = live[0]["live"].as_array().unwrap();
        assert_eq!(figures.len(), 2, "{live}");
        let blue = figures.iter().find(|f| f["slot"] == "blue").unwrap();
        assert_eq!(blue["role"], "candidate");
        assert!(blue["requests"].as_u64().unwrap() > 0, "{live}");
        assert!(blue["errors"].as_u64().unwrap() > 0, "{live}");
    })
    .await;
    stop.cancel();
}
