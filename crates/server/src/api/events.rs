//! `GET /events`: the event log as Server-Sent Events. Each event carries
//! its sequence number as its SSE id and its kind (`card.moved`) as its SSE
//! event name; a client that reconnects with `Last-Event-ID` gets every
//! event after that one, so nothing is lost across a dropped connection.
//! Without it, the stream starts with the next event. Streams end when the
//! server stops, and when the token they were opened with is revoked or
//! expires (or the dashboard session they run in ends).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as Sse_, KeepAlive, Sse};
use futures_util::Stream;
use hifi_app::Actor;
use hifi_app::deploy::Event;

use crate::auth::Authed;
use crate::problem::Problem;
use crate::state::AppState;

/// How many events are read at a time.
const BATCH: usize = 100;

struct Follow {
    state: Arc<AppState>,
    actor: Actor,
    /// The dashboard session the stream was opened in, if it was.
    session: Option<String>,
    after: i64,
    ready: VecDeque<Event>,
    latest: tokio::sync::watch::Receiver<i64>,
}

/// The event log as it grows.
#[utoipa::path(get, path = "/events", tag = "events",
    params(("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "One SSE event per log event: `id` its sequence number, `event` its kind, `data` the event as JSON")))]
pub async fn events(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Sse_, Infallible>>>, Problem> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "bad_input",
                        "Last-Event-ID is the sequence number of an event (a whole number)",
                    )
                })?,
        ),
    };
    let who = actor.clone();
    let newest = s.pool.run(move |p| p.last_event(&who)).await?;
    let session = headers
        .get(axum::http::header::AUTHORIZATION)
        .is_none()
        .then(|| crate::session::cookie_id(&headers))
        .flatten();
    let follow = Follow {
        session,
        latest: s.events.subscribe(),
        after: resume.unwrap_or(newest),
        state: s,
        actor,
        ready: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(follow, next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn next(mut f: Follow) -> Option<(Result<Sse_, Infallible>, Follow)> {
    loop {
        if let Some(event) = f.ready.pop_front() {
            f.after = event.seq;
            let sse = Sse_::default()
                .id(event.seq.to_string())
                .event(event.kind.as_str())
                .json_data(&event)
                .unwrap_or_else(|_| Sse_::default().comment("unencodable event"));
            return Some((Ok(sse), f));
        }
        // Mark what is seen before reading, so an event written meanwhile
        // still wakes the next wait.
        f.latest.borrow_and_update();
        if let Some(id) = &f.session
            && f.state.sessions.get(id).is_none()
        {
            return None;
        }
        let (actor, after) = (f.actor.clone(), f.after);
        match f
            .state
            .pool
            .run(move |p| {
                // Every actor of the API is a token: a revoked one is
                // followed no further.
                p.token_actor(&actor.name)?;
                p.events_after(&actor, after, BATCH)
            })
            .await
        {
            Ok(events) if !events.is_empty() => {
                f.ready.extend(events);
                continue;
            }
            Ok(_) => {}
            Err(problem) if problem.status() == StatusCode::UNAUTHORIZED => {
                tracing::info!(
                    token = f.actor.name,
                    "event stream ended: {}",
                    problem.detail
                );
                return None;
            }
            Err(problem) => {
                tracing::warn!("event stream: {}", problem.detail);
            }
        }
        tokio::select! {
            _ = f.state.shutdown.cancelled() => return None,
            changed = f.latest.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            // A store that failed is tried again, not waited on for ever.
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
