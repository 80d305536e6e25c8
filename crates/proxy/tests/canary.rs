//! Sticky canary, tester override and internal slot pinning.

use std::collections::HashMap;

use crate::util::*;

struct Setup {
    proxy: TestProxy,
    blue: Backend,
    green: Backend,
    port: u16,
    internal: u16,
}

async fn canary_setup(weight: f64) -> Setup {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let (port, internal) = (loopback_port(), loopback_port());
    let mut s = service("catalog", "/catalog", internal, slot("blue", &[&blue]));
    s.candidate = candidate("green", &[&green], weight);
    proxy.put(&table("prod", port, vec![s])).await;
    Setup {
        proxy,
        blue,
        green,
        port,
        internal,
    }
}

async fn set_weight(s: &Setup, weight: f64) {
    let mut t = s.proxy.table("prod").await;
    t.services[0].candidate.as_mut().expect("candidate").weight = weight;
    s.proxy.put(&t).await;
}

/// The slot each user lands on, users sent as `hifi-user` cookies.
async fn slots_of(port: u16, path: &str, users: &[String]) -> HashMap<String, String> {
    let mut conn = Conn::open(port).await;
    let mut out = HashMap::new();
    for u in users {
        let cookie = format!("hifi-user={u}");
        let r = conn.get_with(path, &[("cookie", cookie.as_str())]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("set-cookie"),
            "",
            "a user with a key gets no new cookie"
        );
        out.insert(u.clone(), r.backend().to_owned());
    }
    out
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_splits_distinct_users_within_tolerance() {
    let s = canary_setup(10.0).await;
    let us = users(2000);
    let got = slots_of(s.port, "/catalog", &us).await;
    let green = got.values().filter(|v| *v == "green").count();
    // Exactly the users whose bucket is below 1000 ...
    let expected = us
        .iter()
        .filter(|u| hifi_proxy::bucket(u.as_bytes()) < 1000)
        .count();
    assert_eq!(green, expected);
    // ... which is about 10 % of them.
    assert!(
        (150..=250).contains(&green),
        "{green} of 2000 users on the candidate"
    );
    assert_eq!(s.blue.hits() + s.green.hits(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_keep_their_slot_as_weight_rises() {
    let s = canary_setup(10.0).await;
    let us = users(600);
    let at10 = slots_of(s.port, "/catalog", &us).await;
    set_weight(&s, 50.0).await;
    let at50 = slots_of(s.port, "/catalog", &us).await;
    let mut moved = 0;
    for u in &us {
        if at10[u] == "green" {
            assert_eq!(at50[u], "green", "{u} left the candidate as weight rose");
        } else if at50[u] == "green" {
            moved += 1;
        }
    }
    assert!(
        moved > 100,
        "only {moved} users moved to the candidate at 50 %"
    );
    // And back at 10 %, everyone is where they were.
    set_weight(&s, 10.0).await;
    assert_eq!(slots_of(s.port, "/catalog", &us).await, at10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_user_gets_a_cookie_and_sticks_to_its_bucket() {
    let s = canary_setup(50.0).await;
    let mut conn = Conn::open(s.port).await;
    let r = conn.get("/catalog").await;
    let cookie = r.header("set-cookie").to_owned();
    assert!(cookie.starts_with("hifi-user="), "{cookie}");
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let id = pair.trim_start_matches("hifi-user=");
    let want = if hifi_proxy::bucket(id.as_bytes()) < 5000 {
        "green"
    } else {
        "blue"
    };
    assert_eq!(r.backend(), want, "first request bucketed by the new id");
    for _ in 0..5 {
        let r = conn
            .get_with("/catalog", &[("cookie", pair.as_str())])
            .await;
        assert_eq!(r.backend(), want);
        assert_eq!(r.header("set-cookie"), "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_user_key_is_used_when_configured() {
    let s = canary_setup(50.0).await;
    let mut t = s.proxy.table("prod").await;
    t.user_key = "header:x-user".into();
    s.proxy.put(&t).await;
    let mut conn = Conn::open(s.port).await;
    for u in users(50) {
        let want = if hifi_proxy::bucket(u.as_bytes()) < 5000 {
            "green"
        } else {
            "blue"
        };
        let r = conn.get_with("/catalog", &[("x-user", u.as_str())]).await;
        assert_eq!(r.backend(), want, "{u}");
        assert_eq!(r.header("set-cookie"), "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lands_on_the_same_slot_for_every_service() {
    let proxy = TestProxy::start().await;
    let (cb, cg) = (
        Backend::start("catalog-blue").await,
        Backend::start("catalog-green").await,
    );
    let (pb, pg) = (
        Backend::start("pay-blue").await,
        Backend::start("pay-green").await,
    );
    let port = loopback_port();
    let mut catalog = service("catalog", "/catalog", loopback_port(), slot("blue", &[&cb]));
    catalog.candidate = candidate("green", &[&cg], 50.0);
    let mut pay = service("pay", "/pay", loopback_port(), slot("blue", &[&pb]));
    pay.candidate = candidate("green", &[&pg], 50.0);
    proxy.put(&table("prod", port, vec![catalog, pay])).await;

    let mut conn = Conn::open(port).await;
    let mut greens = 0;
    for u in users(300) {
        let cookie = format!("hifi-user={u}");
        let c = conn
            .get_with("/catalog/x", &[("cookie", cookie.as_str())])
            .await;
        let p = conn.get_with("/pay", &[("cookie", cookie.as_str())]).await;
        assert_eq!(c.header("x-hifi-slot"), p.header("x-hifi-slot"), "{u}");
        greens += usize::from(c.header("x-hifi-slot") == "green");
    }
    assert!((90..=210).contains(&greens), "{greens} of 300 on green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tester_reaches_candidate_only_with_the_preview_token() {
    let s = canary_setup(0.0).await;
    // Without a token configured, the header alone is enough.
    let r = get_with(s.port, "/catalog", &[("x-hifi-slot", "candidate")]).await;
    assert_eq!(r.backend(), "green");
    assert_eq!(
        get(s.port, "/catalog").await.backend(),
        "blue",
        "weight 0: users stay on blue"
    );

    let mut t = s.proxy.table("prod").await;
    t.preview_token = Some("s3cret".into());
    s.proxy.put(&t).await;
    let r = get_with(s.port, "/catalog", &[("x-hifi-slot", "candidate")]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("x-hifi-preview-token"), "{}", r.body);
    let r = get_with(
        s.port,
        "/catalog",
        &[
            ("x-hifi-slot", "candidate"),
            ("x-hifi-preview-token", "wrong"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = get_with(
        s.port,
        "/catalog",
        &[
            ("x-hifi-slot", "candidate"),
            ("x-hifi-preview-token", "s3cret"),
        ],
    )
    .await;
    assert_eq!((r.status, r.backend()), (200, "green"));
    assert_eq!(
        r.header("x-seen-preview"),
        "-",
        "the token is not passed on"
    );
    // A public client cannot pick a slot by name.
    let r = get_with(s.port, "/catalog", &[("x-hifi-slot", "green")]).await;
    assert_eq!(r.backend(), "blue");
    assert_eq!(s.green.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_listener_sends_everything_to_the_candidate_without_a_token() {
    let s = canary_setup(0.0).await;
    let mut t = s.proxy.table("prod").await;
    let preview = loopback_port();
    t.preview_token = Some("s3cret".into());
    t.preview_listen = Some(local(preview));
    s.proxy.put(&t).await;
    for _ in 0..5 {
        let r = get(preview, "/catalog").await;
        assert_eq!((r.status, r.backend()), (200, "green"));
    }
    assert_eq!(
        get(s.port, "/catalog").await.backend(),
        "blue",
        "users stay on blue"
    );

    // Without a candidate, the preview listener serves what users get.
    t.services[0].candidate = None;
    s.proxy.put(&t).await;
    assert_eq!(get(preview, "/catalog").await.backend(), "blue");

    // And it may not share the public listener's address.
    t.preview_listen = Some(t.listen.clone());
    let refused = s.proxy.admin.put_table(&t).await;
    assert!(
        refused.is_err(),
        "a preview listener on the public address is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_listener_keeps_requests_on_the_named_slot() {
    let s = canary_setup(0.0).await;
    let old = Backend::start("old").await;
    let mut t = s.proxy.table("prod").await;
    t.services[0].standby = Some(slot("gray", &[&old]));
    s.proxy.put(&t).await;

    let mut conn = Conn::open(s.internal).await;
    for (asked, want) in [
        ("green", "green"),
        ("blue", "blue"),
        ("gray", "old"),
        ("candidate", "green"),
    ] {
        let r = conn.get_with("/anything", &[("x-hifi-slot", asked)]).await;
        assert_eq!(r.backend(), want, "x-hifi-slot: {asked}");
        assert_eq!(r.header("x-seen-slot"), r.header("x-hifi-slot"));
    }
    // Unknown slot or none: the sticky rule, and without a key the active slot.
    assert_eq!(
        conn.get_with("/", &[("x-hifi-slot", "purple")])
            .await
            .backend(),
        "blue"
    );
    let r = conn.get("/").await;
    assert_eq!(r.backend(), "blue");
    assert_eq!(r.header("set-cookie"), "", "no cookies on internal calls");
    // The internal listener serves its service whatever the path.
    assert_eq!(r.header("x-seen-xff"), "127.0.0.1");
    drop(s.blue);
}
