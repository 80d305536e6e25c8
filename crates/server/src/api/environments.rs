//! Environments: their status and history, and every action on them —
//! compose, deploy, promote, approve, rollback, canary steering.

use std::sync::Arc;

use axum::extract::State;
use hifi_app::deploy::{CanaryAction, Recorded, Start, Started};
use hifi_app::releases::Approved;
use hifi_app::reports::ComposeReport;
use hifi_app::status::{HistoryEntry, Status};

use super::types::{Approve, Deploy, Promote, Rollback};
use super::{Out, Segment};
use crate::auth::Authed;
use crate::body::Json;
use crate::state::AppState;

/// What runs where in every environment, and how webhooks fare.
#[utoipa::path(get, path = "/environments", tag = "environments",
    responses((status = 200, body = Status)))]
pub async fn list(State(s): State<Arc<AppState>>, Authed(actor): Authed) -> Out<Status> {
    s.read(move |p| p.status(&actor, None)).await
}

/// What runs in one environment (the status, for it alone).
#[utoipa::path(get, path = "/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "The environment")),
    responses((status = 200, body = Status)))]
pub async fn show(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(env): Segment<String>,
) -> Out<Status> {
    s.read(move |p| p.status(&actor, Some(&env))).await
}

/// Every deployment of an environment, newest first, with its steps and
/// canary figures.
#[utoipa::path(get, path = "/environments/{env}/history", tag = "environments",
    params(("env" = String, Path, description = "The environment")),
    responses((status = 200, body = Vec<HistoryEntry>)))]
pub async fn history(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(env): Segment<String>,
) -> Out<Vec<HistoryEntry>> {
    s.read(move |p| p.history(&actor, &env)).await
}

/// Composes an environment from the base branch and its cards.
#[utoipa::path(post, path = "/environments/{env}/compose", tag = "environments",
    params(("env" = String, Path, description = "The environment")),
    responses((status = 200, body = ComposeReport)))]
pub async fn compose(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(env): Segment<String>,
) -> Out<ComposeReport> {
    s.write_long(move |p| p.compose_report(&actor, &env, &mut |_| {}))
        .await
}

/// Deploys a release (default: the latest composition) with the
/// environment's strategy.
#[utoipa::path(post, path = "/environments/{env}/deploy", tag = "environments",
    params(("env" = String, Path, description = "The environment")),
    request_body(content = Deploy, description = "Optional: every field may be left out"),
    responses((status = 200, body = Started)))]
pub async fn deploy(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(env): Segment<String>,
    Json(body): Json<Deploy>,
) -> Out<Started> {
    s.write(move |p| {
        let how = Start {
            require_running: body.require_running.unwrap_or(false),
            reason: None,
        };
        p.deploy(&actor, &env, body.release.as_deref(), how)
    })
    .await
}

/// Deploys `from`'s verified live release to this environment.
#[utoipa::path(post, path = "/environments/{env}/promote", tag = "environments",
    params(("env" = String, Path, description = "The environment promoted to")),
    request_body = Promote,
    responses((status = 200, body = Started)))]
pub async fn promote(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(env): Segment<String>,
    Json(body): Json<Promote>,
) -> Out<Started> {
    s.write(move |p| {
        let how = Start {
            require_running: body.require_running.unwrap_or(false),
            reason: body.reason.as_deref(),
        };
        p.promote(&actor, &body.from, &env, how)
    })
    .await
}

/// Signs off a release for the environment (default: the one that would go
/// there next).
#[utoipa::path(post, path = "/environments/{env}/approve", tag = "environments",
    params(("env" = String, Path, description = "The environment")),
    request_body(content = Approve, description = "Optional: every field may be left out"),
    responses((status = 200, body = Approved)))]
pub async fn approve(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(env): Segment<String>,
    Json(body): Json<Approve>,
) -> Out<Approved> {
    s.write(move |p| p.approve(&actor, &env, body.release.as_deref()))
        .await
}

/// Goes back to the previous state in one step.
#[utoipa::path(post, path = "/environments/{env}/rollback", tag = "environments",
    params(("env" = String, Path, description = "The environment")),
    request_body(content = Rollback, description = "Optional: every field may be left out"),
    responses((status = 200, body = Started)))]
pub async fn rollback(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(env): Segment<String>,
    Json(body): Json<Rollback>,
) -> Out<Started> {
    s.write(move |p| {
        let how = Start {
            require_running: body.require_running.unwrap_or(false),
            reason: None,
        };
        p.rollback(&actor, &env, how)
    })
    .await
}

/// Pauses, resumes, aborts or promotes the deployment in progress.
#[utoipa::path(post, path = "/environments/{env}/canary/{action}", tag = "environments",
    params(
        ("env" = String, Path, description = "The environment"),
        ("action" = CanaryAction, Path, description = "pause, resume, abort or promote"),
    ),
    responses((status = 200, body = Recorded)))]
pub async fn canary(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment((env, action)): Segment<(String, CanaryAction)>,
) -> Out<Recorded> {
    s.write(move |p| p.canary(&actor, &env, action)).await
}
