//! A real headless Chromium, driven through chromedriver with fantoccini:
//! chromedriver runs as a child process on a free loopback port and is
//! killed when the test ends; each browser session has a fresh profile.
//! Without chromium and chromedriver a test says loudly that it did not
//! run (`hifi_testkit::skip`), and fails where every part is required
//! (`HIFI_TESTS_REQUIRE_ALL=1`, as CI sets it after installing them).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long any wait for the page may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Browser tests run one at a time: the machine has few cores and each
/// Chromium wants them.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const INSTALL: &str = "the dashboard's browser tests need Chromium and chromedriver: \
                       install them with `apt-get install -y chromium chromium-driver`";

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// chromedriver, running.
pub struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let driver = find(&["chromedriver"]).unwrap_or_else(|| panic!("{INSTALL}"));
        let chromium = find(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("{INSTALL}"));
        let port = hifi_testkit::loopback_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL}", driver.display()));
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        };
        // Bounded: chromedriver listens within a second or two.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return driver;
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited at start ({status}); {INSTALL}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("chromedriver did not listen on port {port} within 10 s");
    }

    async fn browser(&self, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}; {INSTALL}"))
    }
}

/// Runs `scenario` with `n` browser sessions, then closes them, whether
/// it passed or not (so no Chromium outlives the test).
pub async fn with_browsers<F, Fut>(n: usize, scenario: F)
where
    F: FnOnce(Vec<Client>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if find(&["chromedriver"]).is_none()
        || find(&["chromium", "chromium-browser", "google-chrome"]).is_none()
    {
        let thread = std::thread::current();
        hifi_testkit::skip(
            thread.name().unwrap_or("a dashboard browser test"),
            "no Chromium and chromedriver on this machine",
            "apt-get install -y chromium chromium-driver",
        );
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let driver = Driver::start();
    let mut profiles = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..n {
        let profile = tempfile::tempdir().unwrap();
        clients.push(driver.browser(profile.path()).await);
        profiles.push(profile);
    }
    let outcome = std::panic::AssertUnwindSafe(scenario(clients.clone()))
        .catch_unwind()
        .await;
    for client in clients {
        let _ = client.close().await;
    }
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Waits (bounded) for an element matching `css`.
pub async fn wait_for(c: &Client, css: &str) -> Element {
    match c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(found) => found,
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let html = c.source().await.unwrap_or_default();
            panic!("waited {WAIT:?} for `{css}`: {e}\nat {url}:\n{html}")
        }
    }
}

/// Signs in at `url` with `token` through the form, and waits for the
/// first page to be drawn.
pub async fn sign_in(c: &Client, url: &str, token: &str) {
    c.goto(&format!("{url}/")).await.unwrap();
    let field = wait_for(c, "#sign-in #token").await;
    field.send_keys(token).await.unwrap();
    c.find(Locator::Css("#sign-in button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#page[data-rendered]").await;
}

/// Goes to a page of the dashboard (`#/pipeline`) and waits until it is drawn.
pub async fn open(c: &Client, url: &str, hash: &str) {
    c.goto(&format!("{url}/{hash}")).await.unwrap();
    let name = hash.trim_start_matches("#/");
    let name = name.split(['/', '?']).next().unwrap_or("board");
    wait_for(c, &format!("#page[data-page=\"{name}\"]")).await;
}

/// Runs `script` in the page.
pub async fn run(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args).await.unwrap()
}

/// Drags the card `id` onto the column of `stage`. WebDriver's pointer
/// actions do not start a native HTML5 drag in Chromium, so the drag is
/// the events a browser fires for one, sent to the page's own handlers.
pub async fn drag_card(c: &Client, id: &str, stage: &str) {
    let moved = run(
        c,
        r#"const [id, stage] = arguments;
        const card = document.querySelector('[data-card="' + CSS.escape(id) + '"]');
        const column = document.querySelector('[data-stage="' + CSS.escape(stage) + '"]');
        if (!card || !column || card.getAttribute('draggable') !== 'true') return false;
        const dt = new DataTransfer();
        const fire = (el, type) => el.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
        fire(card, 'dragstart');
        fire(column, 'dragenter');
        fire(column, 'dragover');
        fire(column, 'drop');
        fire(card, 'dragend');
        return true;"#,
        vec![json!(id), json!(stage)],
    )
    .await;
    assert_eq!(moved, json!(true), "card {id} could not be dragged");
}
