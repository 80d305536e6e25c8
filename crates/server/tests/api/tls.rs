//! https with a certificate of the team's own (made here with openssl), and
//! the client trusting its CA.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use hifi_server::client::http::HttpClient;
use http::Method;

use crate::util::{Server, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_from_tls_cert_and_tls_key() {
    let s = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
    let (cert, key, csr) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("cert.csr"),
    );
    let ext = dir.path().join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let made = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl makes the test certificates");
        assert!(made.status.success(), "{made:?}");
    };
    let os = |s: &str| std::ffi::OsStr::new(s).to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ]
    .map(os);
    let mut args = vec![os("req"), os("-x509")];
    args.extend(ec.clone());
    args.extend([
        os("-days"),
        os("1"),
        os("-subj"),
        os("/CN=hifi test CA"),
        os("-keyout"),
        ca_key.clone().into(),
        os("-out"),
        ca.clone().into(),
    ]);
    openssl(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let mut args = vec![os("req")];
    args.extend(ec);
    args.extend([
        os("-subj"),
        os("/CN=localhost"),
        os("-keyout"),
        key.clone().into(),
        os("-out"),
        csr.clone().into(),
    ]);
    openssl(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let args = [
        os("x509"),
        os("-req"),
        os("-in"),
        csr.into(),
        os("-CA"),
        ca.clone().into(),
        os("-CAkey"),
        ca_key.into(),
        os("-CAcreateserial"),
        os("-days"),
        os("1"),
        os("-extfile"),
        ext.into(),
        os("-out"),
        cert.clone().into(),
    ];
    openssl(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let (url, stop) = serve(s.dir.path(), s.clock.clone(), Some((&cert, &key)), None).await;
    let client = HttpClient::new(Duration::from_secs(10), Some(&ca)).unwrap();
    let auth = format!("Bearer {}", s.viewer);
    let answer = client
        .send(
            Method::GET,
            &format!("{url}/api/v1/board"),
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 200);
    // Without its CA, the certificate is not trusted.
    let untrusted = HttpClient::new(Duration::from_secs(10), None).unwrap();
    let e = untrusted
        .send(Method::GET, &format!("{url}/healthz"), &[], Bytes::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
    stop.cancel();
}
