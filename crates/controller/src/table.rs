//! The proxy's routing table for one environment, derived from what the
//! store says it serves ([`Routing`]) and which instances run. The table is
//! never edited in place: it is rebuilt from state and replaced whole, so a
//! restarted controller produces exactly the table the proxy already has.

use std::collections::HashMap;

use hifi_core::rollout::Placement;
use hifi_core::{Environment, Protocol, Release, Routing, Service};
use hifi_proxy::{CandidateSpec, ServiceSpec, SlotSpec, TableSpec};

use crate::plan::Running;

/// The key of the environment's preview listener among its internal ports
/// (service names cannot contain `@`).
pub const PREVIEW: &str = "@preview";

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
    /// The releases the routing places (active, candidate, standby): each
    /// slot is spoken to in the protocol its own release recorded.
    pub releases: &'a [Release],
}

/// The protocol `service` speaks in `placement`'s release, as recorded with
/// it; the current config's when the release is not at hand (never
/// expected: the routing only names recorded releases).
fn protocol(inputs: &Inputs<'_>, placement: &Placement, service: &Service) -> Protocol {
    inputs
        .releases
        .iter()
        .find(|r| r.id == placement.release)
        .and_then(|r| r.service(&service.name))
        .map_or(service.protocol, |v| v.recipe.protocol)
}

/// The addresses of the instances of `service` that run `placement`'s
/// release in its slot (`routable_only`: those that may take traffic).
/// Matching the release too matters while a slot changes hands (an aborted
/// candidate's instances still run where the standby it displaced is coming
/// back): the table never points a role at another release's processes.
fn addresses(
    inputs: &Inputs<'_>,
    placement: &Placement,
    service: &str,
    routable_only: bool,
) -> Vec<String> {
    inputs
        .instances
        .iter()
        .filter(|r| {
            r.runs(placement.slot, &placement.release)
                && r.instance.service == service
                && (!routable_only || r.health.routable())
        })
        .map(|r| r.instance.addr.to_string())
        .collect()
}

/// The backends of a role that must keep serving (active, candidate): its
/// routable instances, or, while all of them are down (crashed,
/// restarting), the instances themselves — so the listener stays open and
/// the role's users get errors that are counted against it, never another
/// release's answers.
fn serving(inputs: &Inputs<'_>, placement: &Placement, service: &str) -> Vec<String> {
    let routable = addresses(inputs, placement, service, true);
    if routable.is_empty() {
        addresses(inputs, placement, service, false)
    } else {
        routable
    }
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
            .all(|s| !addresses(inputs, c, &s.name, false).is_empty())
    });
    let mut services = Vec::with_capacity(inputs.services.len());
    for service in inputs.services {
        let active_backends = serving(inputs, active, &service.name);
        if active_backends.is_empty() {
            // Nothing to route to yet; the proxy answers 503 for the route.
            continue;
        }
        let Some(port) = inputs.internal_ports.get(&service.name) else {
            continue;
        };
        // The service speaks the active release's protocol; a slot whose
        // release speaks another says so (a rollout across protocols).
        let spoken = protocol(inputs, active, service);
        let own = |placement: &Placement| {
            Some(protocol(inputs, placement, service)).filter(|p| *p != spoken)
        };
        let candidate = candidate.map(|c| CandidateSpec {
            slot: c.slot.to_string(),
            backends: serving(inputs, c, &service.name),
            weight: routing.weight,
            protocol: own(c),
        });
        let standby = routing.standby.as_ref().and_then(|s| {
            let backends = addresses(inputs, s, &service.name, true);
            (!backends.is_empty()).then(|| SlotSpec {
                slot: s.slot.to_string(),
                backends,
                protocol: own(s),
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
                protocol: None,
            },
            candidate,
            standby,
            protocol: spoken,
            // A serving setting: the current hifi.toml's, for every slot.
            request_timeout_ms: service
                .request_timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
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

#[cfg(test)]
mod tests {
    use hifi_core::{Config, Health, ReleaseId, RuntimeKind, Slot};
    use hifi_runtime::{Instance, InstanceId, InstanceStatus};
    use hifi_testkit::{Env, Service};

    use super::*;

    /// Two services (`web` at `/`, `api` at `/api`) and one environment.
    fn config() -> Config {
        let service = |name: &str, route: &str| Service::new(name).path(name).run("x").route(route);
        let text = hifi_testkit::Config::new("shop")
            .service(service("web", "/"))
            .service(service("api", "/api"))
            .environment(Env::cards("dev", 8100, "In Dev"))
            .render();
        Config::parse(&text).unwrap()
    }

    fn release(name: &str) -> ReleaseId {
        ReleaseId::compute(name, &[])
    }

    fn place(slot: Slot, name: &str) -> Placement {
        Placement {
            slot,
            release: release(name),
        }
    }

    fn running(slot: Slot, name: &str, service: &str, port: u16, health: Health) -> Running {
        Running {
            instance: Instance {
                id: InstanceId::new(format!("test:{port}")),
                addr: ([127, 0, 0, 1], port).into(),
                env: "dev".into(),
                slot,
                service: service.into(),
                replica: 0,
                release: release(name),
                runtime: RuntimeKind::Local,
            },
            health,
            restarts: 0,
            changed_at: 0,
            status: InstanceStatus::Running,
        }
    }

    fn build_with(routing: &Routing, instances: &[Running]) -> Option<TableSpec> {
        build_from(&config(), routing, instances, &[])
    }

    fn build_from(
        config: &Config,
        routing: &Routing,
        instances: &[Running],
        releases: &[Release],
    ) -> Option<TableSpec> {
        let ports = HashMap::from([
            ("web".to_string(), 9001),
            ("api".to_string(), 9002),
            (PREVIEW.to_string(), 9003),
        ]);
        build(&Inputs {
            env: config.environment("dev").unwrap(),
            services: &config.services,
            routing,
            instances,
            internal_ports: &ports,
            preview_token: None,
            releases,
        })
    }

    fn canary(weight: f64) -> Routing {
        Routing {
            active: Some(place(Slot::Blue, "a")),
            candidate: Some(place(Slot::Green, "b")),
            weight,
            ..Routing::default()
        }
    }

    #[test]
    fn nothing_is_served_before_anything_runs() {
        assert!(build_with(&Routing::default(), &[]).is_none());
    }

    #[test]
    fn a_candidate_is_in_the_table_for_every_service_or_none() {
        let mut instances = vec![
            running(Slot::Blue, "a", "web", 1, Health::Healthy),
            running(Slot::Blue, "a", "api", 2, Health::Healthy),
            running(Slot::Green, "b", "web", 3, Health::Healthy),
        ];
        let table = build_with(&canary(10.0), &instances).unwrap();
        assert!(
            table.services.iter().all(|s| s.candidate.is_none()),
            "api has no candidate yet"
        );

        // A crashed candidate instance stays in the table: its users get
        // errors counted against the canary, never the old release's api.
        instances.push(running(Slot::Green, "b", "api", 4, Health::Exited));
        let table = build_with(&canary(10.0), &instances).unwrap();
        let api = table.services.iter().find(|s| s.name == "api").unwrap();
        let candidate = api.candidate.as_ref().unwrap();
        assert_eq!(
            (candidate.backends.as_slice(), candidate.weight),
            (&["127.0.0.1:4".to_string()][..], 10.0)
        );
    }

    #[test]
    fn a_role_never_points_at_another_release_in_its_slot() {
        // The aborted candidate b still runs in green while the standby c
        // that it displaced is coming back there.
        let routing = Routing {
            active: Some(place(Slot::Blue, "a")),
            standby: Some(place(Slot::Green, "c")),
            ..Routing::default()
        };
        let instances = [
            running(Slot::Blue, "a", "web", 1, Health::Healthy),
            running(Slot::Blue, "a", "api", 2, Health::Healthy),
            running(Slot::Green, "b", "web", 3, Health::Healthy),
            running(Slot::Green, "b", "api", 4, Health::Healthy),
        ];
        let table = build_with(&routing, &instances).unwrap();
        assert!(table.services.iter().all(|s| s.standby.is_none()));
    }

    #[test]
    fn a_down_active_keeps_the_listener_open_and_a_first_candidate_stands_in() {
        let instances = [
            running(Slot::Blue, "a", "web", 1, Health::Exited),
            running(Slot::Blue, "a", "api", 2, Health::Starting),
        ];
        let routing = Routing {
            active: Some(place(Slot::Blue, "a")),
            ..Routing::default()
        };
        let table = build_with(&routing, &instances).unwrap();
        assert_eq!(table.services.len(), 2, "the environment keeps its table");

        let first = Routing {
            candidate: Some(place(Slot::Blue, "a")),
            ..Routing::default()
        };
        let table = build_with(&first, &instances).unwrap();
        assert!(
            table
                .services
                .iter()
                .all(|s| s.active.slot == "blue" && s.candidate.is_none())
        );
        assert_eq!(table.preview_listen.as_deref(), Some("127.0.0.1:9003"));
    }

    /// A recorded release `name` whose services speak `protocol`.
    fn recorded(name: &str, config: &Config, protocol: Protocol) -> Release {
        Release {
            id: release(name),
            tree: name.into(),
            commit: "c".into(),
            base_commit: "b".into(),
            cards: vec![],
            services: config
                .services
                .iter()
                .map(|s| hifi_core::ServiceVersion {
                    service: s.name.clone(),
                    version: "v".into(),
                    recipe: hifi_core::Service {
                        protocol,
                        ..s.clone()
                    },
                    digest: None,
                    image_id: None,
                })
                .collect(),
            composed_for: "dev".into(),
            created_at: 0,
        }
    }

    #[test]
    fn each_slot_speaks_its_own_releases_protocol_and_timeouts_come_from_the_config() {
        let mut config = config();
        config.services[0].request_timeout = Some(std::time::Duration::from_millis(1500));
        let instances = [
            running(Slot::Blue, "a", "web", 1, Health::Healthy),
            running(Slot::Blue, "a", "api", 2, Health::Healthy),
            running(Slot::Green, "b", "web", 3, Health::Healthy),
            running(Slot::Green, "b", "api", 4, Health::Healthy),
        ];
        let releases = [
            recorded("a", &config, Protocol::Http1),
            recorded("b", &config, Protocol::Grpc),
        ];
        let table = build_from(&config, &canary(10.0), &instances, &releases).unwrap();
        let web = &table.services[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.protocol, Protocol::Http1, "the active release's");
        assert_eq!(
            web.candidate.as_ref().and_then(|c| c.protocol),
            Some(Protocol::Grpc),
            "the candidate's own"
        );
        assert_eq!(web.request_timeout_ms, Some(1500));
        assert_eq!(table.services[1].request_timeout_ms, None);

        // Once the gRPC release is active, the one it replaced says it
        // speaks HTTP/1.1 as standby.
        let live = Routing {
            active: Some(place(Slot::Green, "b")),
            standby: Some(place(Slot::Blue, "a")),
            ..Routing::default()
        };
        let table = build_from(&config, &live, &instances, &releases).unwrap();
        let web = &table.services[0];
        assert_eq!(web.protocol, Protocol::Grpc);
        assert_eq!(
            web.standby.as_ref().and_then(|s| s.protocol),
            Some(Protocol::Http1)
        );
        assert!(web.candidate.is_none());
    }
}
