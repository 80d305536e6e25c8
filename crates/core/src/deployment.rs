//! The lifecycle of a deployment, as a state machine that refuses
//! impossible moves:
//!
//! ```text
//! pending → building → starting → verifying → live → superseded
//!    │          │          │          │          └──→ rolled-back
//!    └──────────┴──────────┴──────────┴──→ failed | aborted
//! ```
//!
//! `verifying` covers the smoke check and the canary steps; `live` means the
//! release is the active slot. A live deployment ends when a later one goes
//! live (`superseded`) or when it is rolled back. A rollback to a warm
//! standby goes from `building` straight to `live`: nothing needs starting.
//!
//! [`Kind`] says how a deployment replaces what runs, and [`Request`] what a
//! user asked of one in progress; both are stored by name.

use crate::names::named;

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentState {
    /// Recorded, not started.
    Pending,
    /// Artifacts are being built.
    Building,
    /// Instances are starting in the idle slot.
    Starting,
    /// Smoke check or canary analysis in progress.
    Verifying,
    /// The release serves all traffic.
    Live,
    /// A later deployment went live.
    Superseded,
    /// Failed before it went live; the active slot was untouched.
    Failed,
    /// Stopped by its analysis or by a user before it went live.
    Aborted,
    /// It was live and was rolled back.
    RolledBack,
}

/// An impossible move of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a deployment cannot go from {from} to {to}")]
pub struct InvalidTransition {
    /// The current state.
    pub from: DeploymentState,
    /// The refused state.
    pub to: DeploymentState,
}

impl DeploymentState {
    /// Whether the deployment has ended (nothing more will happen to it).
    pub fn is_terminal(self) -> bool {
        use DeploymentState::*;
        matches!(self, Superseded | Failed | Aborted | RolledBack)
    }

    /// Whether the deployment is still rolling out.
    pub fn is_in_progress(self) -> bool {
        use DeploymentState::*;
        matches!(self, Pending | Building | Starting | Verifying)
    }

    /// Moves to `to`, or explains why that move is impossible.
    pub fn advance(self, to: DeploymentState) -> Result<DeploymentState, InvalidTransition> {
        use DeploymentState::*;
        let allowed = match (self, to) {
            (Pending, Building) | (Building, Starting) | (Starting, Verifying) => true,
            // A rollback to the warm standby needs no start.
            (Building, Live) | (Verifying, Live) => true,
            (Live, Superseded) | (Live, RolledBack) => true,
            (from, Failed) | (from, Aborted) => from.is_in_progress(),
            _ => false,
        };
        if allowed {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

named!(DeploymentState, "deployment state" {
    Pending => "pending",
    Building => "building",
    Starting => "starting",
    Verifying => "verifying",
    Live => "live",
    Superseded => "superseded",
    Failed => "failed",
    Aborted => "aborted",
    RolledBack => "rolled-back",
});

/// How a deployment replaces what runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// All users switch at once when every service is healthy.
    BlueGreen,
    /// A growing, sticky share of users, judged at each step.
    Canary,
    /// Back to the previous release: the warm standby if there is one.
    Rollback,
}

impl From<crate::config::Strategy> for Kind {
    fn from(strategy: crate::config::Strategy) -> Kind {
        match strategy {
            crate::config::Strategy::BlueGreen => Kind::BlueGreen,
            crate::config::Strategy::Canary => Kind::Canary,
        }
    }
}

named!(Kind, "deployment kind" {
    BlueGreen => "blue-green",
    Canary => "canary",
    Rollback => "rollback",
});

/// What a user asked of a deployment in progress, for the controller to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    /// Stop it: users go back to the active release.
    Abort,
    /// Skip the remaining canary steps.
    Promote,
}

named!(Request, "request" {
    Abort => "abort",
    Promote => "promote",
});

#[cfg(test)]
mod tests {
    use super::DeploymentState::*;
    use super::*;

    #[test]
    fn happy_path_is_allowed() {
        let mut state = Pending;
        for next in [Building, Starting, Verifying, Live, Superseded] {
            state = state.advance(next).unwrap();
        }
        assert!(state.is_terminal());
    }

    #[test]
    fn impossible_moves_are_refused() {
        assert!(Live.advance(Failed).is_err());
        assert!(Failed.advance(Live).is_err());
        assert!(Pending.advance(Live).is_err());
        assert!(RolledBack.advance(Live).is_err());
        assert!(Verifying.advance(Aborted).is_ok());
    }

    #[test]
    fn names_round_trip() {
        for &state in DeploymentState::ALL {
            assert_eq!(state.as_str().parse(), Ok(state));
        }
        for kind in [Kind::BlueGreen, Kind::Canary, Kind::Rollback] {
            assert_eq!(kind.as_str().parse(), Ok(kind));
        }
        for request in [Request::Abort, Request::Promote] {
            assert_eq!(request.as_str().parse(), Ok(request));
        }
    }

    #[test]
    fn only_a_warm_rollback_skips_starting() {
        assert!(Building.advance(Live).is_ok());
        assert!(Starting.advance(Live).is_err());
    }
}
