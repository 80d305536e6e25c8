//! The kinds of events in hifi's audit log. Every change is recorded with
//! one of these; webhooks and the event stream filter on their names
//! (`deployment.*`), so a name, once shipped, never changes.

use crate::deployment::DeploymentState;
use crate::health::Health;
use crate::names::named;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Each variant is its name, below.
pub enum EventKind {
    ProjectInitialized,
    CardAdded,
    CardMoved,
    CardRemoved,
    ComposeConflict,
    ComposeConflictCleared,
    ReleaseComposed,
    ReleaseVerified,
    ReleaseApproved,
    ReleaseRejected,
    DeploymentCreated,
    DeploymentBuilding,
    DeploymentStarting,
    DeploymentVerifying,
    DeploymentLive,
    DeploymentSuperseded,
    DeploymentFailed,
    DeploymentAborted,
    DeploymentRolledBack,
    DeploymentUpdated,
    DeploymentSmokePassed,
    CanaryStep,
    CanaryExtended,
    CanaryPaused,
    CanaryResumed,
    CanaryAbortRequested,
    CanaryPromoteRequested,
    CanaryStalled,
    InstanceStarted,
    InstanceHealthy,
    InstanceUnhealthy,
    InstanceCrashed,
    InstanceRestarted,
    InstanceStopped,
    SlotUnavailable,
    RoutingRepaired,
    ControllerStarted,
    ControllerStopped,
    ProxyRestarted,
    EnvironmentAdded,
    EnvironmentRemoved,
    StateRestored,
    StateReset,
    TokenCreated,
    TokenRevoked,
}

named!(EventKind, "event kind" {
    ProjectInitialized => "project.initialized",
    CardAdded => "card.added",
    CardMoved => "card.moved",
    CardRemoved => "card.removed",
    ComposeConflict => "compose.conflict",
    ComposeConflictCleared => "compose.conflict-cleared",
    ReleaseComposed => "release.composed",
    ReleaseVerified => "release.verified",
    ReleaseApproved => "release.approved",
    ReleaseRejected => "release.rejected",
    DeploymentCreated => "deployment.created",
    DeploymentBuilding => "deployment.building",
    DeploymentStarting => "deployment.starting",
    DeploymentVerifying => "deployment.verifying",
    DeploymentLive => "deployment.live",
    DeploymentSuperseded => "deployment.superseded",
    DeploymentFailed => "deployment.failed",
    DeploymentAborted => "deployment.aborted",
    DeploymentRolledBack => "deployment.rolled-back",
    DeploymentUpdated => "deployment.updated",
    DeploymentSmokePassed => "deployment.smoke-passed",
    CanaryStep => "canary.step",
    CanaryExtended => "canary.extended",
    CanaryPaused => "canary.paused",
    CanaryResumed => "canary.resumed",
    CanaryAbortRequested => "canary.abort-requested",
    CanaryPromoteRequested => "canary.promote-requested",
    CanaryStalled => "canary.stalled",
    InstanceStarted => "instance.started",
    InstanceHealthy => "instance.healthy",
    InstanceUnhealthy => "instance.unhealthy",
    InstanceCrashed => "instance.crashed",
    InstanceRestarted => "instance.restarted",
    InstanceStopped => "instance.stopped",
    SlotUnavailable => "slot.unavailable",
    RoutingRepaired => "routing.repaired",
    ControllerStarted => "controller.started",
    ControllerStopped => "controller.stopped",
    ProxyRestarted => "proxy.restarted",
    EnvironmentAdded => "environment.added",
    EnvironmentRemoved => "environment.removed",
    StateRestored => "state.restored",
    StateReset => "state.reset",
    TokenCreated => "token.created",
    TokenRevoked => "token.revoked",
});

impl EventKind {
    /// The event of a deployment reaching `state` (`deployment.live`, ...).
    pub fn deployment(state: DeploymentState) -> EventKind {
        use DeploymentState::*;
        match state {
            // A deployment is created pending; nothing moves back to it.
            Pending => EventKind::DeploymentCreated,
            Building => EventKind::DeploymentBuilding,
            Starting => EventKind::DeploymentStarting,
            Verifying => EventKind::DeploymentVerifying,
            Live => EventKind::DeploymentLive,
            Superseded => EventKind::DeploymentSuperseded,
            Failed => EventKind::DeploymentFailed,
            Aborted => EventKind::DeploymentAborted,
            RolledBack => EventKind::DeploymentRolledBack,
        }
    }

    /// The event of an instance's health changing to `health`.
    pub fn instance(health: Health) -> EventKind {
        match health {
            Health::Starting => EventKind::InstanceStarted,
            Health::Healthy => EventKind::InstanceHealthy,
            Health::Unhealthy => EventKind::InstanceUnhealthy,
            Health::Exited => EventKind::InstanceCrashed,
        }
    }

    /// The part before the dot: `deployment`, `canary`, `card`, ...
    pub fn topic(self) -> &'static str {
        self.as_str().split_once('.').map_or("", |(topic, _)| topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_topic_dot_name_and_round_trip() {
        for &kind in EventKind::ALL {
            let name = kind.as_str();
            assert_eq!(name.parse(), Ok(kind));
            let (topic, rest) = name.split_once('.').expect("topic.name");
            assert!(
                !topic.is_empty() && !rest.is_empty() && !rest.contains('.'),
                "{name}"
            );
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-'),
                "{name}"
            );
        }
        for &state in DeploymentState::ALL {
            assert_eq!(EventKind::deployment(state).topic(), "deployment");
        }
    }
}
