//! The admin interface refuses bad updates and leaves the live table alone.

use http::Method;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_are_refused_and_the_live_table_is_unchanged() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let internal = loopback_port();
    let good = table(
        "prod",
        port,
        vec![service(
            "catalog",
            "/catalog",
            internal,
            slot("blue", &[&blue]),
        )],
    );
    proxy.put(&good).await;
    let other_port = loopback_port();
    let other = table(
        "dev",
        other_port,
        vec![service(
            "catalog",
            "/",
            loopback_port(),
            slot("blue", &[&blue]),
        )],
    );
    proxy.put(&other).await;

    let json = serde_json::to_value(&good).expect("json");
    let mut cases: Vec<(&str, serde_json::Value, &str)> = Vec::new();
    let mut v = json.clone();
    v["services"][0]["colour"] = "red".into();
    cases.push(("unknown field", v, "unknown field `colour`"));
    let mut v = json.clone();
    v["services"][0]["candidate"] =
        serde_json::json!({"slot": "green", "backends": [green.addr_str()], "weight": 150.0});
    cases.push(("weight", v, "weight 150 must be between 0 and 100"));
    let mut v = json.clone();
    v["services"][0]["active"]["backends"] = serde_json::json!([]);
    cases.push(("empty active", v, "backends must not be empty"));
    let mut v = json.clone();
    v["services"][0]["active"]["backends"] = serde_json::json!(["localhost:notaport"]);
    cases.push(("address", v, "is not an IP:PORT address"));
    let mut v = json.clone();
    let mut second = v["services"][0].clone();
    second["name"] = "search".into();
    second["internal_listen"] = local(loopback_port()).into();
    v["services"].as_array_mut().expect("array").push(second);
    cases.push((
        "same route",
        v,
        "services catalog and search share the route /catalog",
    ));
    let mut v = json.clone();
    v["listen"] = local(other_port).into();
    cases.push(("clash", v, "clashes with listen of environment dev"));
    let mut v = json.clone();
    v["services"][0]["active"]["slot"] = "Blue!".into();
    cases.push(("slot name", v, "slot name"));

    for (what, body, message) in cases {
        let err = proxy
            .admin
            .put_table_json("prod", serde_json::to_vec(&body).expect("bytes"))
            .await
            .expect_err(what);
        match err {
            hifi_proxy::Error::Admin { status, message: m } => {
                assert_eq!(status, 400, "{what}: {m}");
                assert!(
                    m.contains(message),
                    "{what}: {m:?} should contain {message:?}"
                );
            }
            e => panic!("{what}: unexpected {e}"),
        }
        assert_eq!(
            proxy.admin.get_table("prod").await.expect("get"),
            Some(good.clone()),
            "{what}"
        );
        assert_eq!(
            get(port, "/catalog").await.backend(),
            "blue",
            "{what}: still served"
        );
    }

    // Not JSON, and a path that names another environment.
    let (status, body) = proxy
        .admin
        .request(Method::PUT, "/tables/prod", Some(b"{not json".to_vec()))
        .await
        .expect("request");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _) = proxy
        .admin
        .request(
            Method::PUT,
            "/tables/uat",
            Some(serde_json::to_vec(&good).expect("bytes")),
        )
        .await
        .expect("request");
    assert_eq!(status, 400);
    // A listener port held by another process: 409, nothing changed.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut taken = good.clone();
    taken.services[0].internal_listen = squatter.local_addr().expect("addr").to_string();
    let err = proxy.admin.put_table(&taken).await.expect_err("taken port");
    assert!(
        matches!(err, hifi_proxy::Error::Admin { status: 409, .. }),
        "{err}"
    );
    assert_eq!(
        proxy.admin.get_table("prod").await.expect("get"),
        Some(good.clone())
    );
    assert_eq!(get(internal, "/").await.backend(), "blue");
    // Unknown endpoints and methods.
    assert_eq!(
        proxy
            .admin
            .request(Method::GET, "/nope", None)
            .await
            .expect("req")
            .0,
        404
    );
    assert_eq!(
        proxy
            .admin
            .request(Method::POST, "/tables", None)
            .await
            .expect("req")
            .0,
        405
    );
    assert_eq!(
        proxy
            .admin
            .request(Method::GET, "/stats?env=prod", None)
            .await
            .expect("req")
            .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_cannot_be_persisted_is_rolled_back() {
    let proxy = TestProxy::start().await;
    let (blue, green) = (Backend::start("blue").await, Backend::start("green").await);
    let port = loopback_port();
    let good = table(
        "prod",
        port,
        vec![service(
            "catalog",
            "/",
            loopback_port(),
            slot("blue", &[&blue]),
        )],
    );
    proxy.put(&good).await;
    // Make the state directory unwritable even for root: a file where the
    // tables directory should be.
    let tables = proxy.dir.path().join("state/tables");
    std::fs::remove_dir_all(&tables).expect("remove");
    std::fs::write(&tables, "not a directory").expect("write");

    let mut next = good.clone();
    next.services[0].active = slot("green", &[&green]);
    next.listen = local(loopback_port());
    let err = proxy.admin.put_table(&next).await.expect_err("not durable");
    assert!(
        matches!(err, hifi_proxy::Error::Admin { status: 500, .. }),
        "{err}"
    );
    assert_eq!(
        proxy.admin.get_table("prod").await.expect("get"),
        Some(good.clone())
    );
    assert_eq!(get(port, "/").await.backend(), "blue");
    let new_port = next.listen.rsplit(':').next().expect("port").to_owned();
    eventually("the new listener closed again", || {
        let p = new_port.clone();
        async move {
            tokio::net::TcpStream::connect(format!("127.0.0.1:{p}"))
                .await
                .is_err()
        }
    })
    .await;
}
