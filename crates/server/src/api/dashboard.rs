//! The views the dashboard needs beyond the CLI's: who the caller is and
//! what their role lets them do (so buttons it forbids are disabled, with
//! the reason), the newest events of the log (the audit), and every canary environment's judged figures with the
//! thresholds they are judged against, plus what the proxy measures right
//! now for each service in each slot (the dashboard keeps these samples
//! to draw them over time). Live figures come from the local proxy's admin
//! socket; environments on Kubernetes have none here.

use std::sync::Arc;

use axum::extract::State;
use hifi_app::Project;
use hifi_core::config::Strategy;
use hifi_core::rollout::{Judgement, Window, judge, step_weight};
use hifi_core::{Action, Kind, Role, Slot};
use hifi_store::{Analysis, Deployment, Event};
use serde::{Deserialize, Serialize};

use super::{Out, QueryOf};
use crate::auth::Authed;
use crate::problem::Problem;
use crate::state::AppState;

/// The caller, and what their role lets them do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    /// The token's name: what events record as the actor.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// What that role may do.
    pub may: May,
}

/// What a role may do, as the dashboard asks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct May {
    /// Add, move and remove cards.
    pub move_cards: bool,
    /// Compose environments.
    pub compose: bool,
    /// Sign off releases.
    pub approve: bool,
    /// Reject releases.
    pub reject: bool,
    /// Manage tokens.
    pub manage_tokens: bool,
    /// The environments it may deploy, promote, roll back and steer the
    /// canary of (environments that require approvals need an operator).
    pub deploy: Vec<String>,
}

/// Who is asking and what their role lets them do.
#[utoipa::path(get, path = "/me", tag = "dashboard", responses((status = 200, body = Me)))]
pub async fn me(State(s): State<Arc<AppState>>, Authed(actor): Authed) -> Out<Me> {
    s.read(move |p| Ok(me_of(p, &actor))).await
}

fn me_of(p: &Project, actor: &hifi_app::Actor) -> Me {
    let role = actor.role;
    Me {
        name: actor.name.clone(),
        role,
        may: May {
            move_cards: role.allows(Action::EditCards),
            compose: role.allows(Action::Compose),
            approve: role.allows(Action::Approve),
            reject: role.allows(Action::Reject),
            manage_tokens: role.allows(Action::ManageTokens),
            deploy: p
                .config()
                .environments
                .iter()
                .filter(|e| {
                    role.allows(Action::Deploy {
                        needs_approvals: e.approvals > 0,
                    })
                })
                .map(|e| e.name.clone())
                .collect(),
        },
    }
}

/// A canary environment: its thresholds, its current (or last) canary
/// deployment, the figures each step was judged on, and what the judge
/// would decide next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CanaryView {
    /// The environment.
    pub env: String,
    /// What the candidate is judged against.
    pub thresholds: Thresholds,
    /// The canary deployment in progress, or else the latest one.
    pub deployment: Option<Deployment>,
    /// Whether it is in progress.
    pub in_progress: bool,
    /// Percent of users on the candidate at the current step.
    pub step_weight: Option<f64>,
    /// Percent at the step after it (none: the next pass goes live).
    pub next_weight: Option<f64>,
    /// The candidate slot's judged windows, oldest first: error ratio and
    /// p99 over time.
    pub points: Vec<Analysis>,
    /// What the judge decides if the next window looks like the last one.
    pub forecast: Option<Forecast>,
    /// What the proxy measured over the last [`LIVE_WINDOW_MS`], service by
    /// service, in the candidate's slot and the stable one (while a
    /// canary is in progress).
    pub live: Vec<LiveFigures>,
    /// Why `live` is empty while a canary is in progress (no proxy runs).
    pub live_note: Option<String>,
}

/// How far back the live figures look, in ms.
pub const LIVE_WINDOW_MS: u64 = 10_000;

/// One service in one slot, as the proxy measured it just now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveFigures {
    /// The service.
    pub service: String,
    /// The slot (`blue`, `green`).
    pub slot: Slot,
    /// `candidate` or `stable`.
    pub role: String,
    /// Requests in the window.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// errors / requests (0 without requests).
    pub error_ratio: f64,
    /// 99th percentile latency, when there were requests.
    pub p99_ms: Option<f64>,
    /// When measured (unix ms, the proxy's clock).
    pub at: u64,
}

/// A canary's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Thresholds {
    /// Highest acceptable share of failed requests.
    pub max_error_rate: f64,
    /// Highest acceptable 99th percentile latency, in ms.
    pub max_p99_ms: u64,
    /// Fewer requests than this extend a step.
    pub min_requests: u64,
    /// Percent of users at each step.
    pub steps: Vec<f64>,
    /// How long each step is watched, in ms.
    pub interval_ms: u64,
    /// Whether the stable slot is compared with over the same window.
    pub compare: bool,
}

/// The judge's decision on figures like the last ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Forecast {
    /// `pass`, `extend` or `fail`.
    pub verdict: hifi_core::Verdict,
    /// Why, in words (the bounds broken, or the requests missing).
    pub reasons: Vec<String>,
}

/// Every canary environment, with its figures and thresholds.
#[utoipa::path(get, path = "/canary", tag = "dashboard",
    responses((status = 200, body = Vec<CanaryView>)))]
pub async fn canary(State(s): State<Arc<AppState>>, Authed(actor): Authed) -> Out<Vec<CanaryView>> {
    let (mut views, services, socket) = s
        .pool
        .run(move |p| {
            let names: Vec<String> = p.config().services.iter().map(|s| s.name.clone()).collect();
            Ok((canary_views(p, &actor)?, names, p.layout().proxy_socket()))
        })
        .await?;
    let admin = hifi_proxy::AdminClient::new(socket);
    for view in views.iter_mut().filter(|v| v.in_progress) {
        let Some(candidate) = view.deployment.as_ref().and_then(|d| d.slot) else {
            continue;
        };
        match live(&admin, &view.env, candidate, &services).await {
            Ok(figures) => view.live = figures,
            Err(note) => view.live_note = Some(note),
        }
    }
    Ok(axum::Json(views))
}

/// What the proxy measures now for every service in both slots.
async fn live(
    admin: &hifi_proxy::AdminClient,
    env: &str,
    candidate: Slot,
    services: &[String],
) -> Result<Vec<LiveFigures>, String> {
    // The proxy keeps its windows by the wall clock, so it is asked by it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let stable = match candidate {
        Slot::Blue => Slot::Green,
        Slot::Green => Slot::Blue,
    };
    let mut out = Vec::new();
    for service in services {
        for (slot, role) in [(candidate, "candidate"), (stable, "stable")] {
            let query = hifi_proxy::StatsQuery {
                env: env.to_string(),
                slot: slot.to_string(),
                service: Some(service.clone()),
                since_ms: now.saturating_sub(LIVE_WINDOW_MS),
                slow_ms: None,
            };
            let stats =
                tokio::time::timeout(std::time::Duration::from_secs(1), admin.stats(&query))
                    .await
                    .map_err(|_| "the proxy did not answer within 1 s".to_string())?
                    .map_err(|e| format!("no live figures: the proxy cannot be asked ({e})"))?;
            out.push(LiveFigures {
                service: service.clone(),
                slot,
                role: role.to_string(),
                requests: stats.requests,
                errors: stats.errors,
                error_ratio: stats.error_ratio,
                p99_ms: stats.p99_ms,
                at: now,
            });
        }
    }
    Ok(out)
}

fn canary_views(p: &mut Project, actor: &hifi_app::Actor) -> hifi_app::Result<Vec<CanaryView>> {
    {
        let envs: Vec<_> = p
            .config()
            .environments
            .iter()
            .filter(|e| e.strategy == Strategy::Canary)
            .cloned()
            .collect();
        envs.into_iter()
            .map(|env| {
                let history = p.history(actor, &env.name)?;
                // Newest first: the one in progress, else the latest canary.
                let entry = history
                    .iter()
                    .find(|h| !h.deployment.state.is_terminal())
                    .or_else(|| {
                        history
                            .iter()
                            .find(|h| h.deployment.strategy == Kind::Canary)
                    });
                let c = &env.canary;
                let thresholds = Thresholds {
                    max_error_rate: c.max_error_rate,
                    max_p99_ms: c.max_p99_ms,
                    min_requests: c.min_requests,
                    steps: c.steps.clone(),
                    interval_ms: u64::try_from(c.interval.as_millis()).unwrap_or(u64::MAX),
                    compare: c.compare,
                };
                let (deployment, points) = match entry {
                    Some(h) => (Some(h.deployment.clone()), h.analyses.clone()),
                    None => (None, Vec::new()),
                };
                let in_progress = deployment.as_ref().is_some_and(|d| !d.state.is_terminal());
                let step = deployment
                    .as_ref()
                    .and_then(|d| usize::try_from(d.step).ok());
                let forecast = points.last().filter(|_| in_progress).map(|last| {
                    let window = Window {
                        requests: u64::try_from(last.requests).unwrap_or(0),
                        errors: u64::try_from(last.errors).unwrap_or(0),
                        client_ended: 0,
                        error_ratio: last.error_ratio,
                        p50_ms: last.p50_ms,
                        p99_ms: last.p99_ms,
                    };
                    let judgement = judge(c, &window, None);
                    let reasons = match &judgement {
                        Judgement::Pass => Vec::new(),
                        Judgement::TooFewRequests { seen, needed } => {
                            vec![format!("{seen} requests of the {needed} needed to judge")]
                        }
                        Judgement::Fail(reasons) => reasons.clone(),
                    };
                    Forecast {
                        verdict: judgement.verdict(),
                        reasons,
                    }
                });
                Ok(CanaryView {
                    env: env.name.clone(),
                    thresholds,
                    step_weight: step.and_then(|s| c.steps.get(s).copied()),
                    next_weight: step.and_then(|s| step_weight(c, s + 1)),
                    deployment,
                    in_progress,
                    points,
                    forecast,
                    live: Vec::new(),
                    live_note: None,
                })
            })
            .collect()
    }
}

/// `GET /audit?limit=N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many of the newest events (1 to 500; default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The most events one audit answer holds.
const AUDIT_MAX: usize = 500;

/// The newest events of the log, newest first: who did what, when, where.
#[utoipa::path(get, path = "/audit", tag = "dashboard", params(AuditQuery),
    responses((status = 200, body = Vec<Event>)))]
pub async fn audit(
    State(s): State<Arc<AppState>>,
    Authed(actor): Authed,
    QueryOf(q): QueryOf<AuditQuery>,
) -> Out<Vec<Event>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=AUDIT_MAX).contains(&limit) {
        return Err(Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_input",
            format!("limit is how many events, from 1 to {AUDIT_MAX}"),
        ));
    }
    s.read(move |p| {
        let newest = p.last_event(&actor)?;
        let from = newest
            .saturating_sub(i64::try_from(limit).unwrap_or(i64::MAX))
            .max(0);
        let mut events = p.events_after(&actor, from, limit)?;
        events.reverse();
        Ok(events)
    })
    .await
}
