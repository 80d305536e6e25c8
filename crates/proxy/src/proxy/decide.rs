//! Where a request goes: from the request and the compiled table alone,
//! which service and slot serve it, or which answer the proxy gives itself.
//!
//! The listener's address says its role in the current table: the public
//! listener and the preview listener route by host and path, a service's
//! internal listener serves that service. The slot is then chosen per
//! request (`balancer`); the preview listener always takes the candidate.
//! Nothing here touches the network or waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::balancer::{self, Choice, Headers, IdGen, PREVIEW_TOKEN_HEADER};
use crate::body::ProxyBody;
use crate::compiled::{CompiledService, CompiledSlot, CompiledTable};
use crate::router::{host_without_port, normalise_path};

use super::{ListenerCtx, plain};

/// The outcome of [`decide`].
#[derive(Debug)]
pub(crate) enum Decision<'t> {
    /// Forward to this slot; set this cookie on the response.
    Forward(Arc<CompiledSlot>, Option<HeaderValue>),
    /// Answer without a backend.
    Refuse(Refusal<'t>),
}

/// Why the proxy answers a request itself.
#[derive(Debug)]
pub(crate) enum Refusal<'t> {
    /// The environment has no table (503).
    NoTable,
    /// No route for the request on the public or preview listener (503).
    NoRoute,
    /// An internal listener whose service has left the table (503).
    Closing,
    /// Tester override without the right preview token (403).
    Forbidden,
    /// Tester override, but the service has no candidate (503).
    NoCandidate(&'t CompiledService),
}

/// What deciding needs of a request, whichever path parsed it: hyper's
/// `Request` (HTTP/2 clients) or the HTTP/1 path's parsed head.
pub(crate) trait RequestView: Headers {
    /// The host the request names (`Host`, else the URI's authority), with
    /// its port if it has one.
    fn host(&self) -> Option<&str>;
    /// The path as received (no query).
    fn path(&self) -> &str;
}

impl<B> Headers for Request<B> {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.headers().first(name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers().all(name)
    }
}

impl<B> RequestView for Request<B> {
    fn host(&self) -> Option<&str> {
        self.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| self.uri().authority().map(|a| a.as_str()))
    }

    fn path(&self) -> &str {
        self.uri().path()
    }
}

/// Decide where a request that arrived on the listener configured as `addr`
/// goes, given the environment's current `table`. Public requests are routed
/// on the normal form of their path (`router::normalise_path`).
pub(crate) fn decide<'t>(
    table: Option<&'t CompiledTable>,
    addr: SocketAddr,
    req: &impl RequestView,
    ids: &IdGen,
) -> Decision<'t> {
    let Some(table) = table else {
        return Decision::Refuse(Refusal::NoTable);
    };
    let preview = table.preview_listen == Some(addr);
    let public = preview || table.listen == addr;
    let svc = if public {
        table
            .router
            .route(
                req.host().map(host_without_port),
                &normalise_path(req.path()),
            )
            .map(|i| &table.services[i])
    } else {
        table.internal_service(addr)
    };
    let Some(svc) = svc else {
        return Decision::Refuse(if public {
            Refusal::NoRoute
        } else {
            Refusal::Closing
        });
    };
    let choice = if preview {
        // The preview listener is the tester override; it asks for the token
        // only when it is bound where other hosts can reach it.
        if table.preview_needs_token && !balancer::preview_token_ok(table, req) {
            Choice::Forbidden
        } else {
            let slot = svc.candidate.as_ref().map_or(&svc.active, |(c, _)| c);
            Choice::Slot(slot.clone(), None)
        }
    } else {
        balancer::choose(table, svc, req, public, ids)
    };
    match choice {
        Choice::Slot(slot, cookie) => Decision::Forward(slot, cookie),
        Choice::Forbidden => Decision::Refuse(Refusal::Forbidden),
        Choice::NoCandidate => Decision::Refuse(Refusal::NoCandidate(svc)),
    }
}

/// The proxy's own answer to a request it does not forward (`path` is the
/// request's). Requests nothing routes count as unrouted for the environment.
#[cold]
pub(super) fn refuse(ctx: &ListenerCtx, why: Refusal<'_>, path: &str) -> Response<ProxyBody> {
    let (status, msg) = refusal(ctx, why, path);
    plain(status, msg)
}

/// The status and message of the proxy's own answer to a request it does
/// not forward; counts the request as unrouted when nothing routes it.
#[cold]
pub(crate) fn refusal(ctx: &ListenerCtx, why: Refusal<'_>, path: &str) -> (StatusCode, String) {
    let env = &ctx.env.name;
    let (status, msg, unrouted) = match why {
        Refusal::NoTable => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("hifi: environment {env} has no routing table"),
            true,
        ),
        Refusal::NoRoute => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("hifi: no route for {path} in {env}"),
            true,
        ),
        Refusal::Closing => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("hifi: listener {} of {env} is closing", ctx.addr),
            true,
        ),
        Refusal::Forbidden => (
            StatusCode::FORBIDDEN,
            format!("hifi: the candidate of {env} needs a valid {PREVIEW_TOKEN_HEADER}"),
            false,
        ),
        Refusal::NoCandidate(svc) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("hifi: service {} in {env} has no candidate", svc.name),
            false,
        ),
    };
    if unrouted {
        ctx.env.unrouted.fetch_add(1, Relaxed);
    }
    (status, msg)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::compiled::Compiler;
    use crate::health::HealthRegistry;
    use crate::table::TableSpec;
    use crate::tracking::SlotRegistry;
    use crate::upstream::UpstreamConfig;

    const PUBLIC: &str = "127.0.0.1:8500";
    const PREVIEW: &str = "127.0.0.1:8599";
    const CATALOG: &str = "127.0.0.1:18501";
    const CART: &str = "127.0.0.1:18502";

    /// `catalog` (blue, candidate green at 0 %) and `cart` (red, no
    /// candidate), with a preview token and a preview listener.
    fn table() -> CompiledTable {
        let valid = TableSpec::from_json(
            br#"{"env":"prod","listen":"127.0.0.1:8500","preview_listen":"127.0.0.1:8599",
              "preview_token":"sesame","services":[
              {"name":"catalog","route":"/catalog","internal_listen":"127.0.0.1:18501",
               "active":{"slot":"blue","backends":["127.0.0.1:4001"]},
               "candidate":{"slot":"green","backends":["127.0.0.1:4002"],"weight":0.0}},
              {"name":"cart","route":"/cart","internal_listen":"127.0.0.1:18502",
               "active":{"slot":"red","backends":["127.0.0.1:4003"]}}]}"#,
        )
        .and_then(|t| t.validate())
        .expect("valid table");
        let upstream = UpstreamConfig {
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(1),
            shards: 1,
        };
        Compiler {
            slots: &SlotRegistry::default(),
            health: &HealthRegistry::default(),
            upstream: &upstream,
        }
        .compile(valid, None)
    }

    fn request(path: &str, headers: &[(&'static str, &'static str)]) -> Request<()> {
        let mut b = Request::get(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    /// The slot a decision forwards to and whether it sets a cookie, or the
    /// refusal's name.
    fn outcome(d: Decision<'_>) -> (String, bool) {
        match d {
            Decision::Forward(slot, cookie) => (slot.name.clone(), cookie.is_some()),
            Decision::Refuse(why) => (format!("{why:?}"), false),
        }
    }

    fn at(table: Option<&CompiledTable>, addr: &str, req: &Request<()>) -> (String, bool) {
        let ids = IdGen::new();
        outcome(decide(table, addr.parse().expect("addr"), req, &ids))
    }

    #[test]
    fn public_requests_route_by_path_and_get_a_user_cookie() {
        let t = table();
        let t = Some(&t);
        assert_eq!(
            at(t, PUBLIC, &request("/catalog/1", &[])),
            ("blue".into(), true)
        );
        let known = request("/cart", &[("cookie", "hifi-user=u1")]);
        assert_eq!(at(t, PUBLIC, &known), ("red".into(), false));
        assert_eq!(
            at(t, PUBLIC, &request("/other", &[])),
            ("NoRoute".into(), false)
        );
        assert_eq!(
            at(None, PUBLIC, &request("/catalog", &[])),
            ("NoTable".into(), false)
        );
    }

    #[test]
    fn testers_reach_the_candidate_with_the_token_or_on_the_preview_listener() {
        let t = table();
        let t = Some(&t);
        let asked = request("/catalog", &[("x-hifi-slot", "candidate")]);
        assert_eq!(at(t, PUBLIC, &asked), ("Forbidden".into(), false));
        let with_token = request(
            "/catalog",
            &[
                ("x-hifi-slot", "candidate"),
                ("x-hifi-preview-token", "sesame"),
            ],
        );
        assert_eq!(at(t, PUBLIC, &with_token), ("green".into(), false));
        let no_candidate = request(
            "/cart",
            &[
                ("x-hifi-slot", "candidate"),
                ("x-hifi-preview-token", "sesame"),
            ],
        );
        let (why, _) = at(t, PUBLIC, &no_candidate);
        assert!(why.starts_with("NoCandidate"), "{why}");
        assert_eq!(
            at(t, PREVIEW, &request("/catalog", &[])),
            ("green".into(), false)
        );
        assert_eq!(
            at(t, PREVIEW, &request("/cart", &[])),
            ("red".into(), false)
        );
    }

    #[test]
    fn internal_listeners_serve_their_service_and_honour_slot_names() {
        let t = table();
        let t = Some(&t);
        // Any path: an internal listener belongs to one service.
        assert_eq!(at(t, CATALOG, &request("/x", &[])), ("blue".into(), false));
        let pinned = request("/x", &[("x-hifi-slot", "green")]);
        assert_eq!(at(t, CATALOG, &pinned), ("green".into(), false));
        assert_eq!(at(t, CART, &pinned), ("red".into(), false));
        // From the public side a slot name is not honoured.
        assert_eq!(
            at(
                t,
                PUBLIC,
                &request(
                    "/catalog",
                    &[("x-hifi-slot", "green"), ("cookie", "hifi-user=u1")]
                )
            ),
            ("blue".into(), false)
        );
        assert_eq!(
            at(t, "127.0.0.1:18509", &request("/x", &[])),
            ("Closing".into(), false)
        );
    }
}
