//! The client of the team server's API that the remote CLI uses: one
//! method per endpoint, returning the same types the application layer
//! returns locally, so a remote command renders exactly what a local one
//! does. Errors come back as the server's [`Problem`] (its code, detail and
//! hint), or as why the server could not be reached.

pub mod http;

use std::path::Path;
use std::time::Duration;

use ::http::{Method, StatusCode};
use bytes::Bytes;
use hifi_app::cards::{Added, Board, CardView, Moved};
use hifi_app::deploy::{CanaryAction, Recorded, Started};
use hifi_app::releases::{Approved, DiffView, RejectedRelease, ReleaseDetail, ReleaseSummary};
use hifi_app::reports::{ComposeReport, Progress};
use hifi_app::state::{BackupView, Restored};
use hifi_app::status::{HistoryEntry, Status};
use hifi_app::tokens::{CreatedToken, RevokedToken};
use hifi_core::Role;
use hifi_store::TokenRow;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::types::{
    AddCard, Approve, CreateToken, Deploy, MoveCard, Promote, Reject, RemovedCard, Restore,
    Rollback,
};
use crate::problem::Problem;
pub use http::{HttpClient, HttpError};

/// Why a call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server refused or failed, and said why.
    #[error("{}", .0.detail)]
    Problem(Box<Problem>),
    /// The server could not be reached, or broke off.
    #[error("{0}")]
    Http(#[from] HttpError),
    /// The server answered something this hifi does not understand.
    #[error("{0}")]
    Unexpected(String),
}

/// A team server, as one token sees it.
pub struct Client {
    http: HttpClient,
    base: String,
    token: String,
    runtime: tokio::runtime::Runtime,
}

/// How long one call may take (a composition builds on the server).
const CALL: Duration = Duration::from_secs(600);

impl Client {
    /// A client of the server at `server` (`http://host:port` or
    /// `https://...`) sending `token`; `extra_ca` adds trusted CA
    /// certificates (PEM) for a server with a certificate of its own.
    pub fn new(server: &str, token: &str, extra_ca: Option<&Path>) -> Result<Client, ClientError> {
        let base = server.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(HttpError::BadUrl(format!(
                "`{server}` is not a server URL; give it as http://HOST:PORT or https://HOST:PORT"
            ))
            .into());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Unexpected(format!("cannot start the async runtime: {e}")))?;
        Ok(Client {
            http: HttpClient::new(CALL, extra_ca)?,
            base,
            token: token.trim().to_string(),
            runtime,
        })
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let url = format!("{}/api/v1/{path}", self.base);
        let authorization = format!("Bearer {}", self.token);
        let mut headers = vec![
            ("authorization", authorization.as_str()),
            ("accept", "application/json"),
        ];
        let body = match body {
            Some(body) => {
                headers.push(("content-type", "application/json"));
                Bytes::from(
                    serde_json::to_vec(body).map_err(|e| ClientError::Unexpected(e.to_string()))?,
                )
            }
            None => Bytes::new(),
        };
        let answer = self
            .runtime
            .block_on(self.http.send(method, &url, &headers, body))?;
        if answer.status.is_success() {
            return serde_json::from_slice(&answer.body).map_err(|e| {
                ClientError::Unexpected(format!(
                    "the server's answer does not fit this hifi ({e}); is it the same version?"
                ))
            });
        }
        match serde_json::from_slice::<Problem>(&answer.body) {
            Ok(problem) => Err(ClientError::Problem(Box::new(problem))),
            Err(_) => Err(ClientError::Problem(Box::new(Problem::new(
                answer.status,
                if answer.status == StatusCode::NOT_FOUND {
                    "no_route"
                } else {
                    "unexpected"
                },
                format!(
                    "{} answered {} without saying why; is it a hifi team server?",
                    self.base, answer.status
                ),
            )))),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>)
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body))
    }

    /// `GET board`.
    pub fn board(&self) -> Result<Board, ClientError> {
        self.get("board")
    }

    /// `GET cards`.
    pub fn cards(&self) -> Result<Vec<CardView>, ClientError> {
        self.get("cards")
    }

    /// `POST cards`.
    pub fn add_card(
        &self,
        id: &str,
        branch: &str,
        title: &str,
        hotfix: bool,
    ) -> Result<Added, ClientError> {
        let body = AddCard {
            id: id.into(),
            branch: branch.into(),
            title: Some(title.into()),
            hotfix: Some(hotfix),
        };
        self.post("cards", &body)
    }

    /// `POST cards/{id}/move`.
    pub fn move_card(&self, id: &str, stage: &str) -> Result<Moved, ClientError> {
        self.post(
            &format!("cards/{}/move", segment(id)),
            &MoveCard {
                stage: stage.into(),
            },
        )
    }

    /// `DELETE cards/{id}`.
    pub fn remove_card(&self, id: &str) -> Result<RemovedCard, ClientError> {
        self.call(
            Method::DELETE,
            &format!("cards/{}", segment(id)),
            None::<&()>,
        )
    }

    /// `GET environments` or `GET environments/{env}`.
    pub fn status(&self, env: Option<&str>) -> Result<Status, ClientError> {
        match env {
            None => self.get("environments"),
            Some(env) => self.get(&format!("environments/{}", segment(env))),
        }
    }

    /// `GET environments/{env}/history`.
    pub fn history(&self, env: &str) -> Result<Vec<HistoryEntry>, ClientError> {
        self.get(&format!("environments/{}/history", segment(env)))
    }

    /// `POST environments/{env}/compose`.
    pub fn compose(&self, env: &str) -> Result<ComposeReport, ClientError> {
        self.post(
            &format!("environments/{}/compose", segment(env)),
            &serde_json::json!({}),
        )
    }

    /// `POST environments/{env}/deploy`.
    pub fn deploy(
        &self,
        env: &str,
        release: Option<&str>,
        require_running: bool,
    ) -> Result<Started, ClientError> {
        let body = Deploy {
            release: release.map(Into::into),
            require_running: Some(require_running),
        };
        self.post(&format!("environments/{}/deploy", segment(env)), &body)
    }

    /// `POST environments/{to}/promote`.
    pub fn promote(
        &self,
        from: &str,
        to: &str,
        reason: Option<&str>,
        require_running: bool,
    ) -> Result<Started, ClientError> {
        let body = Promote {
            from: from.into(),
            reason: reason.map(Into::into),
            require_running: Some(require_running),
        };
        self.post(&format!("environments/{}/promote", segment(to)), &body)
    }

    /// `POST environments/{env}/rollback`.
    pub fn rollback(&self, env: &str, require_running: bool) -> Result<Started, ClientError> {
        let body = Rollback {
            require_running: Some(require_running),
        };
        self.post(&format!("environments/{}/rollback", segment(env)), &body)
    }

    /// `POST environments/{env}/approve`.
    pub fn approve(&self, env: &str, release: Option<&str>) -> Result<Approved, ClientError> {
        let body = Approve {
            release: release.map(Into::into),
        };
        self.post(&format!("environments/{}/approve", segment(env)), &body)
    }

    /// `POST environments/{env}/canary/{action}`.
    pub fn canary(&self, env: &str, action: CanaryAction) -> Result<Recorded, ClientError> {
        let action = match action {
            CanaryAction::Pause => "pause",
            CanaryAction::Resume => "resume",
            CanaryAction::Abort => "abort",
            CanaryAction::Promote => "promote",
        };
        self.post(
            &format!("environments/{}/canary/{action}", segment(env)),
            &serde_json::json!({}),
        )
    }

    /// `GET releases`.
    pub fn releases(&self) -> Result<Vec<ReleaseSummary>, ClientError> {
        self.get("releases")
    }

    /// `GET releases/{id}`.
    pub fn release(&self, id: &str) -> Result<ReleaseDetail, ClientError> {
        self.get(&format!("releases/{}", segment(id)))
    }

    /// `POST releases/{id}/reject`.
    pub fn reject(&self, id: &str, reason: &str) -> Result<RejectedRelease, ClientError> {
        self.post(
            &format!("releases/{}/reject", segment(id)),
            &Reject {
                reason: reason.into(),
            },
        )
    }

    /// `GET diff?from=A&to=B`.
    pub fn diff(&self, a: &str, b: &str) -> Result<DiffView, ClientError> {
        self.get(&format!("diff?from={}&to={}", segment(a), segment(b)))
    }

    /// `GET deployments/{id}`.
    pub fn progress(&self, id: i64) -> Result<Progress, ClientError> {
        self.get(&format!("deployments/{id}"))
    }

    /// `GET tokens`.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, ClientError> {
        self.get("tokens")
    }

    /// `POST tokens`.
    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        expires: Option<&str>,
    ) -> Result<CreatedToken, ClientError> {
        let body = CreateToken {
            name: name.into(),
            role,
            expires: expires.map(Into::into),
        };
        self.post("tokens", &body)
    }

    /// `DELETE tokens/{name}`.
    pub fn revoke_token(&self, name: &str) -> Result<RevokedToken, ClientError> {
        self.call(
            Method::DELETE,
            &format!("tokens/{}", segment(name)),
            None::<&()>,
        )
    }

    /// `GET state/backups`.
    pub fn backups(&self) -> Result<Vec<BackupView>, ClientError> {
        self.get("state/backups")
    }

    /// `POST state/restore`.
    pub fn restore(&self, backup: Option<&str>) -> Result<Restored, ClientError> {
        self.post(
            "state/restore",
            &Restore {
                backup: backup.map(Into::into),
            },
        )
    }
}

/// A value made safe as one path segment or query value: everything but
/// unreserved characters percent-encoded.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
