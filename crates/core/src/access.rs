//! Who may do what: the roles of a team and the actions they allow, as
//! DESIGN.md defines them. One pure rule ([`Role::allows`]) that every
//! shell — the local CLI, the HTTP API, the dashboard — applies through the
//! application layer, so no shell can be more permissive than another.
//!
//! - `viewer` reads everything;
//! - `developer` also moves cards, composes, and deploys, promotes, rolls
//!   back or steers canaries in environments that need no approvals;
//! - `approver` reads, approves and rejects releases;
//! - `operator` does every deployment action in every environment,
//!   approvals included, and everything a developer does;
//! - `admin` does everything, managing tokens included.
//!
//! The local CLI works on `.hifi/` directly as the OS user: the file system
//! is the boundary, so it acts as `admin`.

use crate::names::named;

/// A role a person (or a token) acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Cards, compositions, and deployments where no approval is needed.
    Developer,
    /// Reads and approves.
    Approver,
    /// Every deployment action everywhere, approvals included.
    Operator,
    /// Everything, tokens included.
    Admin,
}

named!(Role, "role" {
    Viewer => "viewer",
    Developer => "developer",
    Approver => "approver",
    Operator => "operator",
    Admin => "admin",
});

/// What someone wants to do, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Any view: board, status, history, releases, diff, events.
    Read,
    /// Add, move or remove a card.
    EditCards,
    /// Compose an environment.
    Compose,
    /// Deploy, promote, roll back or steer a canary in an environment.
    Deploy {
        /// Whether the environment requires approvals.
        needs_approvals: bool,
    },
    /// Sign off a release.
    Approve,
    /// Reject a release: it never goes live again.
    Reject,
    /// Create, list or revoke tokens.
    ManageTokens,
    /// List, restore or reset the state database.
    ManageState,
}

impl Action {
    /// How a refusal names the action.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::EditCards => "change cards",
            Action::Compose => "compose environments",
            Action::Deploy {
                needs_approvals: false,
            } => "deploy",
            Action::Deploy {
                needs_approvals: true,
            } => "deploy to an environment that requires approvals",
            Action::Approve => "approve releases",
            Action::Reject => "reject releases",
            Action::ManageTokens => "manage tokens",
            Action::ManageState => "manage the state database",
        }
    }
}

impl Role {
    /// Whether this role may do `action`.
    pub fn allows(self, action: Action) -> bool {
        use Role::*;
        match action {
            Action::Read => true,
            Action::EditCards | Action::Compose => matches!(self, Developer | Operator | Admin),
            Action::Deploy {
                needs_approvals: false,
            } => matches!(self, Developer | Operator | Admin),
            Action::Deploy {
                needs_approvals: true,
            } => matches!(self, Operator | Admin),
            Action::Approve => matches!(self, Approver | Operator | Admin),
            // An approver "reads and approves" (DESIGN.md): withholding a
            // sign-off is theirs, taking a release out of every
            // environment's reach is an operator's.
            Action::Reject => matches!(self, Operator | Admin),
            Action::ManageTokens | Action::ManageState => self == Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIONS: [Action; 9] = [
        Action::Read,
        Action::EditCards,
        Action::Compose,
        Action::Deploy {
            needs_approvals: false,
        },
        Action::Deploy {
            needs_approvals: true,
        },
        Action::Approve,
        Action::Reject,
        Action::ManageTokens,
        Action::ManageState,
    ];

    fn allowed(role: Role) -> Vec<&'static str> {
        ACTIONS
            .iter()
            .filter(|a| role.allows(**a))
            .map(|a| a.describe())
            .collect()
    }

    #[test]
    fn each_role_allows_what_design_says() {
        assert_eq!(allowed(Role::Viewer), ["read"]);
        assert_eq!(
            allowed(Role::Developer),
            ["read", "change cards", "compose environments", "deploy"]
        );
        assert_eq!(allowed(Role::Approver), ["read", "approve releases"]);
        assert_eq!(allowed(Role::Operator).len(), 7);
        assert!(!Role::Operator.allows(Action::ManageTokens));
        assert!(!Role::Operator.allows(Action::ManageState));
        assert_eq!(allowed(Role::Admin).len(), ACTIONS.len());
    }

    #[test]
    fn role_names_round_trip() {
        for &role in Role::ALL {
            assert_eq!(role.as_str().parse(), Ok(role));
        }
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("unknown role `root`")
        );
    }
}
