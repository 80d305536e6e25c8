//! Webhooks against real receivers on 127.0.0.1: delivered once each, in
//! order, signed; retried with backoff when the endpoint answers 500 or
//! hangs, shown failing in the status meanwhile; resumed after a restart
//! without loss or repetition. The clock is a ManualClock: retries become
//! due by moving it, not by waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hifi_app::Project;
use hifi_core::config::Config;
use hifi_server::notify::{Notifier, Options, signature};
use hifi_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::util::{Server, root};

/// How a receiver answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

/// What a receiver got: each request's headers and body.
type Received = Arc<Mutex<Vec<(HashMap<String, String>, Vec<u8>)>>>;

/// A webhook endpoint on a loopback port, recording what it receives.
struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    got: Received,
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let got: Received = Arc::new(Mutex::new(Vec::new()));
        let (m, g) = (mode.clone(), got.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let (m, g) = (m.clone(), g.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head, body_start) = loop {
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (String::from_utf8_lossy(&buf[..at]).into_owned(), at + 4);
                        }
                    };
                    let headers: HashMap<String, String> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < body_start + length {
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let mode = *m.lock().unwrap();
                    if mode == Mode::Hang {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    g.lock()
                        .unwrap()
                        .push((headers, buf[body_start..body_start + length].to_vec()));
                    let status = if mode == Mode::Ok {
                        "200 OK"
                    } else {
                        "500 Internal Server Error"
                    };
                    let _ = tcp
                        .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                        .await;
                });
            }
        });
        Receiver { port, mode, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The event kinds received so far, in order, with their delivery ids.
    fn received(&self) -> Vec<(String, String)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| (h["x-hifi-event"].clone(), h["x-hifi-delivery"].clone()))
            .collect()
    }
}

fn options() -> Options {
    Options {
        timeout: Duration::from_millis(300),
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        retry_for: Duration::from_secs(3600),
        poll: Duration::from_millis(20),
        batch: 100,
    }
}

/// The project's `[[notify]]` targets, with `extra` appended to its config.
fn notifier(s: &Server, extra: &str, vars: &[(&str, &str)]) -> Notifier {
    let path = s.dir.path().join("hifi.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.contains("[[notify]]") {
        text.push_str(extra);
        std::fs::write(&path, &text).unwrap();
    }
    let config = Config::parse(&text).unwrap();
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Notifier::new(
        s.project().layout().db(),
        &config.name,
        Some("http://127.0.0.1:8000".into()),
        config.notify,
        s.clock.clone(),
        Arc::new(move |name: &str| vars.get(name).cloned()),
        Arc::new(hifi_server::Metrics::new()),
        options(),
    )
    .unwrap()
}

fn store(s: &Server) -> Store {
    Store::open(&s.project().layout().db()).unwrap()
}

fn add_card(p: &mut Project, id: &str) {
    p.add_card(&root(), id, "feature/a", "", false).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_once_in_order_signed_and_filtered() {
    let s = Server::start().await;
    let hook = Receiver::start(Mode::Ok).await;
    let extra =
        "\n[[notify]]\nurl = \"${HOOK_URL}\"\nevents = [\"card.*\"]\nsecret = \"${HOOK_SECRET}\"\n";
    let n = notifier(
        &s,
        extra,
        &[("HOOK_URL", &hook.url()), ("HOOK_SECRET", "s3cret")],
    );
    let mut st = store(&s);
    // A new webhook starts at the present: history before it is not sent.
    let mut p = s.project();
    add_card(&mut p, "OLD-1");
    assert_eq!(n.pass(&mut st, 0).await.unwrap().delivered, 0);
    add_card(&mut p, "A-1");
    p.move_card(&root(), "A-1", "in-dev").unwrap();
    p.compose(&root(), "dev", &mut |_| {}).unwrap();
    let pass = n.pass(&mut st, 0).await.unwrap();
    assert_eq!((pass.delivered, pass.failed.as_deref()), (2, None));
    assert!(pass.skipped >= 1, "release.composed is not a card event");
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (headers, body) = &got[0];
    assert_eq!(headers["x-hifi-event"], "card.added");
    assert_eq!(headers["x-hifi-signature"], signature(b"s3cret", body));
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        (event["card"].as_str(), event["actor"].as_str()),
        (Some("A-1"), Some("root"))
    );
    // Nothing new: nothing sent again.
    assert_eq!(n.pass(&mut st, 0).await.unwrap().delivered, 0);
    assert_eq!(hook.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_with_backoff_and_shows_in_the_status() {
    let s = Server::start().await;
    let hook = Receiver::start(Mode::Fail).await;
    let n = notifier(
        &s,
        &format!("\n[[notify]]\nurl = \"{}\"\n", hook.url()),
        &[],
    );
    let mut st = store(&s);
    n.pass(&mut st, 0).await.unwrap();
    let mut p = s.project();
    add_card(&mut p, "A-1");
    add_card(&mut p, "B-2");
    let pass = n.pass(&mut st, 0).await.unwrap();
    assert_eq!(
        pass.failed.as_deref(),
        Some("the endpoint answered 500 Internal Server Error")
    );
    // Not due yet: no new attempt until the clock passes the backoff.
    assert!(n.pass(&mut st, 0).await.unwrap().waiting);
    assert_eq!(hook.received().len(), 1);
    let status = p.status(&root(), None).unwrap();
    let w = &status.webhooks[0];
    assert!(w.failing, "{w:?}");
    assert_eq!(
        (w.attempts, w.behind, w.webhook.as_str()),
        (
            1,
            2,
            format!("json http://127.0.0.1:{}/…", hook.port).as_str()
        )
    );
    let text = s.get("environments", &s.viewer).await.expect(200);
    assert_eq!(text["webhooks"][0]["failing"], true);

    s.clock.advance(1_000);
    assert!(n.pass(&mut st, 0).await.unwrap().failed.is_some());
    // The second retry waits twice as long.
    s.clock.advance(1_000);
    assert!(n.pass(&mut st, 0).await.unwrap().waiting);
    hook.set(Mode::Ok);
    s.clock.advance(1_000);
    let pass = n.pass(&mut st, 0).await.unwrap();
    assert_eq!(pass.delivered, 2);
    let kinds: Vec<String> = hook.received().into_iter().map(|(k, _)| k).collect();
    // Two failed attempts at the first event, then both, once each.
    assert_eq!(
        kinds,
        ["card.added", "card.added", "card.added", "card.added"]
    );
    let ids: Vec<String> = hook.received().into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(
        ids[2..]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        2
    );
    assert!(!p.status(&root(), None).unwrap().webhooks[0].failing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_hangs_times_out_and_holds_up_nothing_else() {
    let s = Server::start().await;
    let hung = Receiver::start(Mode::Hang).await;
    let fine = Receiver::start(Mode::Ok).await;
    let extra = format!(
        "\n[[notify]]\nurl = \"{}\"\n\n[[notify]]\nurl = \"{}\"\nformat = \"slack\"\n",
        hung.url(),
        fine.url()
    );
    let n = notifier(&s, &extra, &[]);
    let mut st = store(&s);
    n.pass(&mut st, 0).await.unwrap();
    n.pass(&mut st, 1).await.unwrap();
    let mut p = s.project();
    add_card(&mut p, "A-1");
    let started = std::time::Instant::now();
    let (hung_pass, fine_pass) = {
        let mut st2 = store(&s);
        tokio::join!(n.pass(&mut st, 0), n.pass(&mut st2, 1))
    };
    assert!(started.elapsed() < Duration::from_secs(5));
    let why = hung_pass.unwrap().failed.unwrap();
    assert!(why.contains("no answer from 127.0.0.1"), "{why}");
    assert_eq!(fine_pass.unwrap().delivered, 1);
    let body = fine.got.lock().unwrap()[0].1.clone();
    let slack: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains("*hifi shop*") && text.contains("added card A-1"),
        "{text}"
    );
    // hifi itself answers meanwhile.
    s.get("board", &s.viewer).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_loses_nor_repeats_events_and_old_ones_are_given_up_on() {
    let s = Server::start().await;
    let hook = Receiver::start(Mode::Ok).await;
    let extra = format!(
        "\n[[notify]]\nurl = \"{}\"\nevents = [\"card.added\"]\n",
        hook.url()
    );
    {
        let n = notifier(&s, &extra, &[]);
        n.pass(&mut store(&s), 0).await.unwrap();
        add_card(&mut s.project(), "A-1");
        n.pass(&mut store(&s), 0).await.unwrap();
    }
    // Down meanwhile: two more events; a new notifier (a restarted hifi).
    add_card(&mut s.project(), "B-2");
    add_card(&mut s.project(), "C-3");
    let n = notifier(&s, &extra, &[]);
    n.pass(&mut store(&s), 0).await.unwrap();
    let ids: Vec<String> = hook.received().into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );

    // An endpoint down for longer than the retry window: the event is
    // given up on (counted), and the next ones go.
    hook.set(Mode::Fail);
    add_card(&mut s.project(), "D-4");
    let mut st = store(&s);
    assert!(n.pass(&mut st, 0).await.unwrap().failed.is_some());
    s.clock.advance(3_600_001);
    hook.set(Mode::Ok);
    add_card(&mut s.project(), "E-5");
    let pass = n.pass(&mut st, 0).await.unwrap();
    assert_eq!((pass.dropped, pass.delivered), (1, 1));
    let status = s.project().status(&root(), None).unwrap();
    assert_eq!(status.webhooks[0].dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_variable_fails_the_delivery_without_revealing_anything() {
    let s = Server::start().await;
    let n = notifier(&s, "\n[[notify]]\nurl = \"${MISSING_HOOK}\"\n", &[]);
    let mut st = store(&s);
    n.pass(&mut st, 0).await.unwrap();
    add_card(&mut s.project(), "A-1");
    let pass = n.pass(&mut st, 0).await.unwrap();
    assert!(pass.failed.unwrap().contains("`MISSING_HOOK` is not set"));
    let status = s.project().status(&root(), None).unwrap();
    assert_eq!(status.webhooks[0].webhook, "json ${MISSING_HOOK}");
}
