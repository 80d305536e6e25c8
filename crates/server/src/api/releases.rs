//! Releases, a release's fidelity chain, rejecting one, and the diff of two
//! environments.

use std::sync::Arc;

use axum::extract::State;
use hifi_app::releases::{DiffView, RejectedRelease, ReleaseDetail, ReleaseSummary};

use super::types::{DiffQuery, Reject};
use super::{Out, QueryOf, Segment};
use crate::auth::Authed;
use crate::body::Json;
use crate::state::AppState;

/// Every release, newest first.
#[utoipa::path(get, path = "/releases", tag = "releases",
    responses((status = 200, body = Vec<ReleaseSummary>)))]
pub async fn list(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
) -> Out<Vec<ReleaseSummary>> {
    s.read(move |p| p.releases(&actor)).await
}

/// One release's fidelity chain: composition (base, cards with commits),
/// artifacts with digests, where and when verified, approvals, deployments,
/// where live.
#[utoipa::path(get, path = "/releases/{id}", tag = "releases",
    params(("id" = String, Path, description = "A release id, or a unique prefix of 4 or more characters")),
    responses((status = 200, body = ReleaseDetail)))]
pub async fn show(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(id): Segment<String>,
) -> Out<ReleaseDetail> {
    s.read(move |p| p.release(&actor, &id)).await
}

/// Rejects a release: it never goes live again anywhere.
#[utoipa::path(post, path = "/releases/{id}/reject", tag = "releases",
    params(("id" = String, Path, description = "A release id, or a unique prefix of 4 or more characters")),
    request_body = Reject,
    responses((status = 200, body = RejectedRelease)))]
pub async fn reject(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(id): Segment<String>,
    Json(body): Json<Reject>,
) -> Out<RejectedRelease> {
    s.write(move |p| p.reject(&actor, &id, &body.reason)).await
}

/// Cards, service versions and vars that differ between two environments.
#[utoipa::path(get, path = "/diff", tag = "releases", params(DiffQuery),
    responses((status = 200, body = DiffView)))]
pub async fn diff(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    QueryOf(q): QueryOf<DiffQuery>,
) -> Out<DiffView> {
    s.read(move |p| p.diff(&actor, &q.from, &q.to)).await
}
