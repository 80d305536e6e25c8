//! The board and the cards.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use hifi_app::cards::{Added, Board, CardView, Moved};

use super::types::{AddCard, MoveCard, RemovedCard};
use super::{Out, Segment};
use crate::auth::Authed;
use crate::body::Json;
use crate::state::AppState;

/// Stages as columns, each environment's cards, conflicts.
#[utoipa::path(get, path = "/board", tag = "cards", responses((status = 200, body = Board)))]
pub async fn board(State(s): State<Arc<AppState>>, Authed(actor): Authed) -> Out<Board> {
    s.read(move |p| p.board(&actor)).await
}

/// Every card with its stage and where it is included and live.
#[utoipa::path(get, path = "/cards", tag = "cards", responses((status = 200, body = Vec<CardView>)))]
pub async fn list(State(s): State<Arc<AppState>>, Authed(actor): Authed) -> Out<Vec<CardView>> {
    s.read(move |p| p.cards(&actor)).await
}

/// Registers a card at the first stage of the workflow.
#[utoipa::path(post, path = "/cards", tag = "cards", request_body = AddCard,
    responses((status = 201, body = Added)))]
pub async fn add(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Json(body): Json<AddCard>,
) -> Result<(StatusCode, axum::Json<Added>), crate::problem::Problem> {
    let added = s
        .write(move |p| {
            p.add_card(
                &actor,
                &body.id,
                &body.branch,
                body.title.as_deref().unwrap_or(""),
                body.hotfix.unwrap_or(false),
            )
        })
        .await?;
    Ok((StatusCode::CREATED, added))
}

/// Moves a card to a stage.
#[utoipa::path(post, path = "/cards/{id}/move", tag = "cards", request_body = MoveCard,
    params(("id" = String, Path, description = "The card's id")),
    responses((status = 200, body = Moved)))]
pub async fn move_card(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(id): Segment<String>,
    Json(body): Json<MoveCard>,
) -> Out<Moved> {
    s.write(move |p| p.move_card(&actor, &id, &body.stage))
        .await
}

/// Removes a card; releases that merged it keep their record.
#[utoipa::path(delete, path = "/cards/{id}", tag = "cards",
    params(("id" = String, Path, description = "The card's id")),
    responses((status = 200, body = RemovedCard)))]
pub async fn remove(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    Segment(id): Segment<String>,
) -> Out<RemovedCard> {
    s.write(move |p| {
        p.remove_card(&actor, &id)
            .map(|removed| RemovedCard { removed })
    })
    .await
}
