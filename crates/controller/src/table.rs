//! The proxy's routing table for one environment, derived from what the
//! store says it serves ([`Routing`]) and which instances run. The table is
//! never edited in place: it is rebuilt from state and replaced whole, so a
//! restarted controller produces exactly the table the proxy already has.

use std::collections::HashMap;

use hifi_core::rollout::Placement;
use hifi_core::{Environment, Routing, Service};
use hifi_proxy::{CandidateSpec, ServiceSpec, SlotSpec, TableSpec};
use hifi_runtime::Instance;

/// Health of an instance as the controller records it.
pub mod health {
    /// Started, not yet answering its health path.
    pub const STARTING: &str = "starting";
    /// Answering 2xx.
    pub const HEALTHY: &str = "healthy";
    /// Running, but its last probe failed.
    pub const UNHEALTHY: &str = "unhealthy";
    /// Its process is gone.
    pub const EXITED: &str = "exited";
}

/// The key of the environment's preview listener among its internal ports
/// (service names cannot contain `@`).
pub const PREVIEW: &str = "@preview";

/// An instance with its recorded health.
#[derive(Debug, Clone)]
pub struct Running {
    /// What the runtime returned.
    pub instance: Instance,
    /// Recorded health.
    pub health: String,
    /// Restarts after crashes.
    pub restarts: i64,
}

impl Running {
    /// Whether the proxy may send it traffic (its own health checks decide
    /// moment to moment; the controller only keeps out what never came up
    /// or is gone).
    pub fn routable(&self) -> bool {
        self.health == health::HEALTHY || self.health == health::UNHEALTHY
    }
}

/// Everything a table is built from.
pub struct Inputs<'a> {
    /// The environment.
    pub env: &'a Environment,
    /// The project's services.
    pub services: &'a [Service],
    /// What the environment serves.
    pub routing: &'a Routing,
    /// Its instances.
    pub instances: &'a [Running],
    /// Stable internal port of each service, and the preview port under
    /// [`PREVIEW`].
    pub internal_ports: &'a HashMap<String, u16>,
    /// The preview token, resolved from hifi's environment.
    pub preview_token: Option<String>,
}

/// The routable instances of `service` that run `placement`'s release in
/// its slot. Matching the release too matters while a slot changes hands
/// (an aborted candidate's instances still run where the standby it
/// displaced is coming back): the table never points a role at another
/// release's processes.
fn backends(inputs: &Inputs<'_>, placement: &Placement, service: &str) -> Vec<String> {
    inputs
        .instances
        .iter()
        .filter(|r| {
            r.instance.slot == placement.slot.as_str()
                && r.instance.release == placement.release.as_str()
                && r.instance.service == service
                && r.routable()
        })
        .map(|r| r.instance.addr.to_string())
        .collect()
}

/// Every recorded instance of `service` of `placement`'s release in its
/// slot, whatever its health.
fn own_instances(inputs: &Inputs<'_>, placement: &Placement, service: &str) -> Vec<String> {
    inputs
        .instances
        .iter()
        .filter(|r| {
            r.instance.slot == placement.slot.as_str()
                && r.instance.release == placement.release.as_str()
                && r.instance.service == service
        })
        .map(|r| r.instance.addr.to_string())
        .collect()
}

/// Builds the table, or `None` when the environment serves nothing yet.
///
/// Before anything was ever live, the candidate stands in as the active
/// slot: there are no users to protect yet, and it lets the smoke check and
/// testers reach it through the public listener.
pub fn build(inputs: &Inputs<'_>) -> Option<TableSpec> {
    let routing = inputs.routing;
    let (active, candidate) = match (&routing.active, &routing.candidate) {
        (Some(active), candidate) => (active, candidate.as_ref()),
        (None, Some(candidate)) => (candidate, None),
        (None, None) => return None,
    };
    // A candidate is in the table for every service or for none: a user on
    // it must get every service from it. Where one of its instances is down
    // (crashed, restarting), the table keeps pointing at it, so those users
    // get errors that count against the canary rather than the old release.
    let candidate = candidate.filter(|c| {
        inputs
            .services
            .iter()
            .all(|s| !own_instances(inputs, c, &s.name).is_empty())
    });
    let mut services = Vec::with_capacity(inputs.services.len());
    for service in inputs.services {
        let mut active_backends = backends(inputs, active, &service.name);
        if active_backends.is_empty() {
            // Every instance of the active role is down (crashed, restarting):
            // keep pointing at them, so the environment's listener stays open
            // and answers 502/503 until the restart, rather than closing.
            active_backends = own_instances(inputs, active, &service.name);
        }
        if active_backends.is_empty() {
            // Nothing to route to yet; the proxy answers 503 for the route.
            continue;
        }
        let Some(port) = inputs.internal_ports.get(&service.name) else {
            continue;
        };
        let candidate = candidate.map(|c| {
            let mut backends = backends(inputs, c, &service.name);
            if backends.is_empty() {
                backends = own_instances(inputs, c, &service.name);
            }
            CandidateSpec {
                slot: c.slot.to_string(),
                backends,
                weight: routing.weight,
            }
        });
        let standby = routing.standby.as_ref().and_then(|s| {
            let backends = backends(inputs, s, &service.name);
            (!backends.is_empty()).then(|| SlotSpec {
                slot: s.slot.to_string(),
                backends,
            })
        });
        services.push(ServiceSpec {
            name: service.name.clone(),
            route: service.route.clone(),
            host: None,
            internal_listen: format!("127.0.0.1:{port}"),
            health: service.health.clone(),
            active: SlotSpec {
                slot: active.slot.to_string(),
                backends: active_backends,
            },
            candidate,
            standby,
        });
    }
    if services.is_empty() {
        return None;
    }
    Some(TableSpec {
        env: inputs.env.name.clone(),
        listen: format!("127.0.0.1:{}", inputs.env.port),
        user_key: inputs.env.user_key.to_string(),
        preview_token: inputs.preview_token.clone(),
        preview_listen: inputs
            .internal_ports
            .get(PREVIEW)
            .map(|port| format!("127.0.0.1:{port}")),
        services,
    })
}
