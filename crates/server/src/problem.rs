//! Errors as the API answers them: `application/problem+json` (RFC 9457)
//! with the stable `code` of [`hifi_app::Error::code`] and its hint as
//! extension members. The status follows the error's kind; internals (a
//! failing disk, git, the database) are logged and answered with a
//! sentence that reveals nothing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hifi_app::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// The media type of every error the API answers.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One error, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:hifi:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the status (`Conflict`).
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, in a sentence a person can act on.
    pub detail: String,
    /// The stable, machine-readable name of the failure (`not_verified`).
    pub code: String,
    /// What to do about it, when hifi knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:hifi:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            hint: None,
        }
    }

    /// The same, with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    /// The status, as a type.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Something hifi itself could not do; the detail goes to the log.
    pub fn internal(what: impl std::fmt::Display) -> Problem {
        tracing::error!("the API could not answer: {what}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "hifi could not do that; the server's log says why",
        )
    }
}

/// The HTTP status of an application error's kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Refused => StatusCode::CONFLICT,
        // The server's own project is unusable (its hifi.toml broke while
        // it runs): not the caller's doing, and said as it is.
        ErrorKind::Usage | ErrorKind::Config => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let status = status_of(e.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return Problem::internal(&e);
        }
        let problem = Problem::new(status, e.code(), e.to_string());
        match e.hint() {
            Some(hint) => problem.with_hint(hint),
            None => problem,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hifi\""),
            );
        }
        response
    }
}
