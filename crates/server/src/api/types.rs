//! Request bodies and the few responses that are the API's own. Every body
//! refuses unknown fields, so a typo is a 422 rather than a silent default.

use hifi_core::Role;
use serde::{Deserialize, Serialize};

/// `POST /cards`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCard {
    /// The card's id (`PAY-12`).
    pub id: String,
    /// Its git branch.
    pub branch: String,
    /// A short title.
    #[serde(default)]
    pub title: Option<String>,
    /// A hotfix card: also composed onto production's live release.
    #[serde(default)]
    pub hotfix: Option<bool>,
}

/// `POST /cards/{id}/move`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveCard {
    /// The stage, named loosely (`in-test` = `In Test`).
    pub stage: String,
}

/// `DELETE /cards/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemovedCard {
    /// The card removed.
    pub removed: hifi_core::CardId,
}

/// `POST /environments/{env}/deploy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The release (id or unique prefix); default: the environment's latest
    /// composition.
    #[serde(default)]
    pub release: Option<String>,
    /// Refuse unless a control plane runs (for a caller about to wait).
    #[serde(default)]
    pub require_running: Option<bool>,
}

/// `POST /environments/{env}/promote`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The environment the release is verified and live in.
    pub from: String,
    /// Why a hotfix goes outside the target's windows (recorded).
    #[serde(default)]
    pub reason: Option<String>,
    /// Refuse unless a control plane runs (for a caller about to wait).
    #[serde(default)]
    pub require_running: Option<bool>,
}

/// `POST /environments/{env}/rollback`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Refuse unless a control plane runs (for a caller about to wait).
    #[serde(default)]
    pub require_running: Option<bool>,
}

/// `POST /environments/{env}/approve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// The release; default: the one that would go there next.
    #[serde(default)]
    pub release: Option<String>,
}

/// `POST /releases/{id}/reject`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    /// Why it must never go live again.
    pub reason: String,
}

/// `GET /diff?from=A&to=B`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The left environment.
    pub from: String,
    /// The right environment.
    pub to: String,
}

/// `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Its name: recorded as the actor of what it does.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How long it is valid (`90d`, `12h`); for ever without.
    #[serde(default)]
    pub expires: Option<String>,
}

/// `POST /state/restore`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// The backup's name; default: the newest.
    #[serde(default)]
    pub backup: Option<String>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
}
