//! Supervision decisions: stop what no slot needs, record a crash when it
//! is first seen, restart it once its backoff has passed (counted from the
//! recorded crash, so a restarted controller keeps the pace), probe health
//! once a second, and forget the crashes of an instance that has since run
//! healthy for a while.

use hifi_core::Health;
use hifi_runtime::InstanceStatus;

use super::{Action, CRASHES_FORGOTTEN_AFTER_MS, PROBE_EVERY_MS, Planner, backoff_ms};

impl Planner<'_> {
    pub(super) fn supervise(&mut self) {
        let now = self.o.now;
        let probe = now - self.notes.last_probe >= PROBE_EVERY_MS;
        if probe {
            self.notes.last_probe = now;
        }
        for r in &self.o.instances {
            let wanted = self
                .o
                .routing
                .in_slot(r.instance.slot)
                .is_some_and(|p| p.release == r.instance.release);
            if !wanted {
                // A leftover of an interrupted abort or a displaced standby.
                self.act(Action::Stop {
                    instance: Box::new(r.clone()),
                    why: "no slot of the environment needs it any more".into(),
                });
                continue;
            }
            if let Some(replicas) = self.replicas(&r.instance.release, &r.instance.service)
                && r.instance.replica >= replicas
            {
                self.act(Action::Stop {
                    instance: Box::new(r.clone()),
                    why: format!("the service runs {replicas} replica(s) per slot now"),
                });
                continue;
            }
            match r.status {
                InstanceStatus::Exited { code, signal } if r.health != Health::Exited => {
                    let how = match (code, signal) {
                        (Some(code), _) => format!("exited with status {code}"),
                        (_, Some(signal)) => format!("was killed by signal {signal}"),
                        _ => "exited".to_string(),
                    };
                    let message = format!(
                        "{} {how}; restarting in {} s",
                        r.instance.describe(),
                        backoff_ms(r.restarts) / 1000
                    );
                    self.act(Action::MarkCrashed {
                        instance: Box::new(r.clone()),
                        message,
                    });
                }
                InstanceStatus::Exited { .. } if now >= r.changed_at + backoff_ms(r.restarts) => {
                    self.act(Action::Restart {
                        instance: Box::new(r.clone()),
                    });
                }
                InstanceStatus::Running
                    if r.restarts > 0
                        && r.health == Health::Healthy
                        && now - r.changed_at >= CRASHES_FORGOTTEN_AFTER_MS =>
                {
                    self.act(Action::ForgetCrashes {
                        instance: Box::new(r.clone()),
                    });
                }
                InstanceStatus::Running if probe && r.health != Health::Starting => {
                    self.act(Action::Probe {
                        instance: Box::new(r.clone()),
                    });
                }
                _ => {}
            }
        }
    }
}
