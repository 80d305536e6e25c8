//! A project with a running team server, and HTTP helpers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hifi_app::deploy::Start;
use hifi_app::{Actor, Project, Role};
use hifi_core::clock::{Clock, ManualClock};
use hifi_server::client::http::HttpClient;
use hifi_testkit::{Config, Env, Service, loopback_port};
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// dev (cards from In Dev), prod (promotes from dev, four-eyes).
pub fn config() -> String {
    Config::new("shop")
        .service(Service::new("api").route("/"))
        .environment(Env::cards("dev", loopback_port(), "In Dev"))
        .environment(Env::promote("prod", loopback_port(), "dev").set("four_eyes", "true"))
        .render()
}

/// A project, its server, and a token for each role.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub stop: CancellationToken,
    http: HttpClient,
    pub viewer: String,
    pub developer: String,
    pub approver: String,
    pub operator: String,
    pub admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An answer, its body read as JSON when it is.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Answer {
    /// Asserts the status; returns the JSON.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        if status >= 400 {
            assert_eq!(
                self.headers["content-type"], "application/problem+json",
                "{}",
                self.text
            );
            assert!(self.json["code"].is_string(), "{}", self.text);
            assert_eq!(self.json["status"], status, "{}", self.text);
        }
        self.json
    }

    /// Asserts a problem with this status and code.
    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Value {
        let json = self.expect(status);
        assert_eq!(json["code"], code, "{json}");
        json
    }
}

/// The actor a local admin acts as.
pub fn root() -> Actor {
    Actor::local("root")
}

impl Server {
    /// A project on main with one service and a branch `feature/a`, served.
    pub async fn start() -> Server {
        Server::start_with(&config()).await
    }

    /// [`Server::start`] with another `hifi.toml`.
    pub async fn start_with(config: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path();
        hifi_testkit::repo::one_service(root_dir, config);

        let clock = Arc::new(ManualClock::new());
        let mut project = Project::open_with_clock(root_dir, clock.clone()).unwrap();
        let mut token = |name: &str, role: Role| {
            project
                .create_token(&root(), name, role, None)
                .unwrap()
                .secret
        };
        let (viewer, developer, approver, operator, admin) = (
            token("vic", Role::Viewer),
            token("dora", Role::Developer),
            token("po", Role::Approver),
            token("otto", Role::Operator),
            token("ada", Role::Admin),
        );
        let (url, stop) = serve(root_dir, clock.clone(), None, None).await;
        Server {
            dir,
            url,
            clock,
            stop,
            http: HttpClient::new(Duration::from_secs(30), None).unwrap(),
            viewer,
            developer,
            approver,
            operator,
            admin,
        }
    }

    /// Serves the same project anew, as if behind a reverse proxy that
    /// users reach at `public_url` (`[server] url`).
    pub async fn behind_proxy(&mut self, public_url: &str) {
        self.stop.cancel();
        let (url, stop) = serve(self.dir.path(), self.clock.clone(), None, Some(public_url)).await;
        self.url = url;
        self.stop = stop;
    }

    /// Stops the server and serves the same project anew (on a new port),
    /// as `hifi up` after a restart.
    pub async fn restart(&mut self) {
        self.stop.cancel();
        let (url, stop) = serve(self.dir.path(), self.clock.clone(), None, None).await;
        self.url = url;
        self.stop = stop;
    }

    /// The project, on the server's clock.
    pub fn project(&self) -> Project {
        Project::open_with_clock(self.dir.path(), self.clock.clone()).unwrap()
    }

    /// Sends a request with `token` (none: no Authorization header) and a
    /// body sent as is.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("authorization", auth));
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let answer = self
            .http
            .send(
                method,
                &format!("{}{path}", self.url),
                &all,
                Bytes::copy_from_slice(body),
            )
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        Answer {
            status: answer.status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers: answer.headers,
            text,
        }
    }

    /// `GET /api/v1/{path}` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.raw("GET", &format!("/api/v1/{path}"), Some(token), &[], b"")
            .await
    }

    /// `POST /api/v1/{path}` with `token` and a JSON body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        let body = serde_json::to_vec(&body).unwrap();
        self.raw(
            "POST",
            &format!("/api/v1/{path}"),
            Some(token),
            &[("content-type", "application/json")],
            &body,
        )
        .await
    }

    /// `DELETE /api/v1/{path}` with `token`.
    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.raw("DELETE", &format!("/api/v1/{path}"), Some(token), &[], b"")
            .await
    }

    /// dev composed, deployed and verified (as the control plane would
    /// record it), so prod may promote it; returns the release id.
    pub fn verified_in_dev(&self) -> String {
        let mut p = self.project();
        p.compose(&root(), "dev", &mut |_| {}).unwrap();
        let started = p.deploy(&root(), "dev", None, Start::default()).unwrap();
        goes_live(&p, "dev", started.deployment.id);
        started.deployment.release.as_str().to_string()
    }
}

/// Serves the project in `dir` on a new loopback port; TLS with `tls`
/// (certificate, key); `public_url` as `[server] url`.
pub async fn serve(
    dir: &Path,
    clock: Arc<dyn Clock>,
    tls: Option<(&Path, &Path)>,
    public_url: Option<&str>,
) -> (String, CancellationToken) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let (listener, scheme) = match tls {
        None => (hifi_server::Listener::plain(tcp), "http"),
        Some((cert, key)) => (hifi_server::Listener::tls(tcp, cert, key).unwrap(), "https"),
    };
    let mut options = hifi_server::Options::new(dir);
    options.clock = clock;
    options.public_url = public_url.map(str::to_string);
    let stop = CancellationToken::new();
    tokio::spawn(hifi_server::serve(options, listener, stop.clone()));
    let host = if scheme == "https" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    (format!("{scheme}://{host}:{port}"), stop)
}

/// Records, as the control plane would, that deployment `id` went live in
/// `env` and was verified there.
pub fn goes_live(project: &Project, env: &str, id: i64) {
    let mut store = hifi_store::Store::open(&project.layout().db()).unwrap();
    hifi_store::testing::went_live(&mut store, env, id, project.now()).unwrap();
}
