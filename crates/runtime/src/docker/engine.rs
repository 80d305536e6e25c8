//! [`Engine`]: the Docker engine hifi talks to, over its unix socket.
//!
//! Nothing is contacted until the first request, so hifi works on machines
//! without Docker as long as no environment uses `runtime = "docker"`. A
//! failed connection is not remembered: the next request tries again (the
//! user may have started `dockerd` meanwhile). Errors from a socket that
//! does not answer become [`Error::DockerUnavailable`], which names the
//! socket and says how to start an engine.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// Where `dockerd` listens unless `DOCKER_HOST` says otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long the first contact (version negotiation) may take: an engine
/// that does not answer within it is as good as absent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound for one ordinary request (create, start, inspect, list...).
/// Requests that wait for something (stop, build, wait) get their own.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One Docker engine, reached over a unix socket.
///
/// Nothing is contacted until the first request, and a failed connection is
/// not remembered: the next request tries again (the user may have started
/// `dockerd` meanwhile).
#[derive(Debug)]
pub struct Engine {
    socket: PathBuf,
    /// Why the configured address cannot be used at all (`DOCKER_HOST` not
    /// a unix socket).
    unusable: Option<String>,
    client: OnceCell<Docker>,
}

impl Engine {
    /// The engine listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Engine {
        Engine {
            socket: socket.into(),
            unusable: None,
            client: OnceCell::new(),
        }
    }

    /// The engine `DOCKER_HOST` names (`unix:///path`), else the one on
    /// [`DEFAULT_SOCKET`]. Any other kind of `DOCKER_HOST` (tcp, ssh) is
    /// refused with a clear error when the engine is first used.
    pub fn from_env() -> Engine {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.trim().is_empty() => match host.strip_prefix("unix://") {
                Some(path) => Engine::new(path),
                None => Engine {
                    unusable: Some(format!(
                        "DOCKER_HOST is `{host}`, but hifi talks to Docker over a unix socket only"
                    )),
                    ..Engine::new(host)
                },
            },
            _ => Engine::new(DEFAULT_SOCKET),
        }
    }

    /// The socket hifi talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Contacts the engine (once; later calls reuse the connection).
    ///
    /// Fails with [`Error::DockerUnavailable`] when nothing answers.
    pub async fn ping(&self) -> Result<()> {
        let docker = self.client().await?;
        docker
            .ping()
            .await
            .map(drop)
            .map_err(|e| self.failed("answer a ping", e))
    }

    /// The API client, connecting (and negotiating the API version) on first
    /// use.
    pub(crate) async fn client(&self) -> Result<&Docker> {
        self.client.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Docker> {
        if let Some(reason) = &self.unusable {
            return Err(self.unavailable(reason.clone()));
        }
        let path = self
            .socket
            .to_str()
            .ok_or_else(|| self.unavailable("the socket path is not UTF-8".into()))?;
        let docker =
            Docker::connect_with_unix(path, CONNECT_TIMEOUT.as_secs(), API_DEFAULT_VERSION)
                .map_err(|e| self.unavailable(reason(&e)))?;
        // The engine may speak an older API than bollard's default; settle on
        // the older of the two.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| self.unavailable(reason(&e)))?;
        tracing::debug!(socket = %self.socket.display(), version = ?docker.client_version(), "connected to the Docker engine");
        Ok(docker.with_timeout(REQUEST_TIMEOUT))
    }

    fn unavailable(&self, reason: String) -> Error {
        Error::DockerUnavailable {
            socket: self.socket.clone(),
            reason,
        }
    }

    /// The runtime's error for a failed request: "unavailable" when the
    /// engine went away, else what the engine said.
    pub(crate) fn failed(&self, what: impl Into<String>, e: bollard::errors::Error) -> Error {
        if is_unreachable(&e) {
            self.unavailable(reason(&e))
        } else {
            Error::Docker {
                what: what.into(),
                message: reason(&e),
            }
        }
    }
}

/// The engine said 404: the container or image does not exist.
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The engine could not be reached at all (as opposed to answering an error).
fn is_unreachable(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match e {
        E::SocketNotFoundError(_) | E::RequestTimeoutError => true,
        E::HyperLegacyError { err } => err.is_connect(),
        E::IOError { err } => matches!(
            err.kind(),
            std::io::ErrorKind::NotFound
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::PermissionDenied
        ),
        _ => false,
    }
}

/// The error with its causes, `a: b: c`: bollard's own words are often only
/// "client error (Connect)", the cause says "Connection refused".
pub(crate) fn reason(e: &bollard::errors::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
