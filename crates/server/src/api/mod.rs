//! The routes of `/api/v1`, each a thin call into [`hifi_app::Project`],
//! and the OpenAPI document generated from them.
//!
//! - `cards.rs`: the board and the cards.
//! - `environments.rs`: status, history, and every action on an environment.
//! - `releases.rs`: releases, their fidelity chain, rejecting, the diff.
//! - `events.rs`: the event log as Server-Sent Events.
//! - `admin.rs`: following a deployment, tokens, the state's backups.
//! - `dashboard.rs`: what the dashboard asks beyond the CLI: the caller
//!   and what they may do, the audit (the newest events), and the
//!   canaries' figures with their thresholds.
//! - `types.rs`: request bodies.

mod admin;
mod cards;
pub mod dashboard;
mod environments;
mod events;
mod releases;
pub mod types;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use hifi_app::Project;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::{PROBLEM_JSON, Problem};
use crate::state::AppState;

/// What a handler answers: JSON, or a problem.
pub type Out<T> = Result<axum::Json<T>, Problem>;

/// A path parameter (or several), read into `T`; a segment that does not
/// fit is a problem, not a plain-text rejection.
pub struct Segment<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Segment<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Segment(v))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_input", e.body_text()))
    }
}

/// A query string read into `T`.
pub struct QueryOf<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryOf(v))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_input", e.body_text()))
    }
}

impl AppState {
    /// Runs a view.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Project) -> hifi_app::Result<T> + Send + 'static,
    ) -> Out<T> {
        self.pool.run(f).await.map(axum::Json)
    }

    /// Runs a short operation (a few statements in one transaction) after
    /// the ones that arrived before it, then tells the event streams to
    /// look.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Project) -> hifi_app::Result<T> + Send + 'static,
    ) -> Out<T> {
        let turn = self.writes.lock().await;
        let result = self.pool.run(f).await;
        drop(turn);
        self.events.poke();
        result.map(axum::Json)
    }

    /// Runs a long operation (a composition: merges and builds, with short
    /// transactions between them) without holding up the short ones.
    pub async fn write_long<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Project) -> hifi_app::Result<T> + Send + 'static,
    ) -> Out<T> {
        let result = self.pool.run(f).await;
        self.events.poke();
        result.map(axum::Json)
    }
}

/// The `/api/v1` routes (relative) with their OpenAPI document.
pub fn routes() -> (axum::Router<Arc<AppState>>, OpenApi) {
    let (router, mut doc) = OpenApiRouter::<Arc<AppState>>::new()
        .routes(routes!(cards::board))
        .routes(routes!(cards::list, cards::add))
        .routes(routes!(cards::move_card))
        .routes(routes!(cards::remove))
        .routes(routes!(environments::list))
        .routes(routes!(environments::show))
        .routes(routes!(environments::history))
        .routes(routes!(environments::compose))
        .routes(routes!(environments::deploy))
        .routes(routes!(environments::promote))
        .routes(routes!(environments::approve))
        .routes(routes!(environments::rollback))
        .routes(routes!(environments::canary))
        .routes(routes!(releases::list))
        .routes(routes!(releases::show))
        .routes(routes!(releases::reject))
        .routes(routes!(releases::diff))
        .routes(routes!(events::events))
        .routes(routes!(admin::deployment))
        .routes(routes!(admin::tokens, admin::create_token))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::backups))
        .routes(routes!(admin::restore))
        .routes(routes!(dashboard::me))
        .routes(routes!(dashboard::canary))
        .routes(routes!(dashboard::audit))
        .split_for_parts();
    describe(&mut doc);
    (router, doc)
}

/// The errors every operation may answer, with the status each stands for.
const ERRORS: [(&str, &str); 10] = [
    (
        "400",
        "Malformed input: a bad id, JSON that does not parse, a token in the URL",
    ),
    (
        "401",
        "No valid token: missing, unknown, revoked or expired",
    ),
    ("403", "The token's role does not allow it"),
    ("404", "Something named does not exist"),
    (
        "409",
        "Refused by a rule of hifi, or in conflict with the state",
    ),
    ("413", "The request body is too large"),
    ("415", "The request body is not JSON"),
    (
        "422",
        "The JSON does not fit: an unknown or missing field, a wrong type",
    ),
    ("429", "Too many failed authentications from this address"),
    (
        "503",
        "The server's own project cannot be read (its hifi.toml is broken)",
    ),
];

/// Completes the generated document: title and version, the bearer
/// scheme on every operation, and the problem responses each may give.
fn describe(doc: &mut OpenApi) {
    // The routes are nested under /api/v1; so are their paths.
    let paths = std::mem::take(&mut doc.paths.paths);
    for (path, item) in paths {
        doc.paths.paths.insert(format!("/api/v1{path}"), item);
    }
    doc.info.title = "hifi team server".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Every operation and view of hifi's CLI. Authenticate with `Authorization: Bearer <token>` (`hifi token create`); errors are `application/problem+json` with a stable `code`.".into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    let (name, schema) = (
        <Problem as utoipa::ToSchema>::name().to_string(),
        <Problem as utoipa::PartialSchema>::schema(),
    );
    components.schemas.insert(name, schema);
    // Path parameters' schemas are not collected with the operations.
    components.schemas.insert(
        <hifi_app::deploy::CanaryAction as utoipa::ToSchema>::name().to_string(),
        <hifi_app::deploy::CanaryAction as utoipa::PartialSchema>::schema(),
    );
    // The dashboard's session cookie authenticates too (writes with it
    // must carry this server's Origin).
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::session::COOKIE,
            "The dashboard's session (POST /session); writes must carry this server's Origin",
        ))),
    );
    let requirement =
        utoipa::openapi::security::SecurityRequirement::new("token", Vec::<String>::new());
    let session =
        utoipa::openapi::security::SecurityRequirement::new("session", Vec::<String>::new());
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post, &mut item.delete]
            .into_iter()
            .flatten()
        {
            op.security = Some(vec![requirement.clone(), session.clone()]);
            for (status, description) in ERRORS {
                let response = ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build();
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert(response.into());
            }
        }
    }
}
