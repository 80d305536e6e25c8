//! What goes beyond the board and the pipeline: following one deployment
//! (what `--wait` polls), API tokens (admin), and the state database's
//! backups (admin) — so every command of the CLI has its endpoint.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use hifi_app::reports::Progress;
use hifi_app::state::{BackupView, Restored};
use hifi_app::tokens::{CreatedToken, RevokedToken};
use hifi_store::TokenRow;

use super::types::{CreateToken, Restore};
use super::{Out, Segment};
use crate::auth::Authed;
use crate::body::Json;
use crate::problem::Problem;
use crate::state::AppState;

/// One deployment with its events so far.
#[utoipa::path(get, path = "/deployments/{id}", tag = "environments",
    params(("id" = i64, Path, description = "The deployment's number")),
    responses((status = 200, body = Progress)))]
pub async fn deployment(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(id): Segment<i64>,
) -> Out<Progress> {
    s.read(move |p| p.progress(&actor, id)).await
}

/// Every token (never a secret).
#[utoipa::path(get, path = "/tokens", tag = "tokens", responses((status = 200, body = Vec<TokenRow>)))]
pub async fn tokens(State(s): State<Arc<AppState>>, Authed(actor): Authed) -> Out<Vec<TokenRow>> {
    s.read(move |p| p.tokens(&actor)).await
}

/// Creates a token; its secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken)))]
pub async fn create_token(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), Problem> {
    let expires = body
        .expires
        .as_deref()
        .map(hifi_core::duration::parse)
        .transpose()
        .map_err(|m| Problem::new(StatusCode::BAD_REQUEST, "bad_input", m))?;
    let created = s
        .write(move |p| p.create_token(&actor, &body.name, body.role, expires))
        .await?;
    Ok((StatusCode::CREATED, created))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, body = RevokedToken)))]
pub async fn revoke_token(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(name): Segment<String>,
) -> Out<RevokedToken> {
    s.write(move |p| p.revoke_token(&actor, &name)).await
}

/// The state database's backups, newest first.
#[utoipa::path(get, path = "/state/backups", tag = "state",
    responses((status = 200, body = Vec<BackupView>)))]
pub async fn backups(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
) -> Out<Vec<BackupView>> {
    s.read(move |p| p.backups(&actor)).await
}

/// Restores a backup: always refused here, since a restore needs hifi
/// stopped and this server is hifi running; the answer says so as the
/// local command does (after checking the caller may restore at all).
#[utoipa::path(post, path = "/state/restore", tag = "state",
    request_body(content = Restore, description = "Optional: every field may be left out"),
    responses((status = 200, body = Restored)))]
pub async fn restore(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Json(_body): Json<Restore>,
) -> Out<Restored> {
    s.read(move |p| {
        p.backups(&actor)?;
        Err(hifi_app::Error::AlreadyRunning {
            pid: std::process::id(),
        })
    })
    .await
}
