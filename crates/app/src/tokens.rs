//! API tokens: creating one (its secret is shown once and only its hash is
//! kept), listing and revoking them — an admin's work — and authenticating
//! a presented secret into the [`Actor`] the team server acts as. Every
//! event a token's holder causes records the token's name.

use std::time::Duration;

use hifi_core::token::{self, RANDOM_BYTES, Secret};
use hifi_core::{Action, Role};
use hifi_store::{NewToken, SessionRow, TokenRow};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Actor, Project};

/// A token just created, with its secret: the only time it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub token: TokenRow,
    /// Its secret, for `Authorization: Bearer ...` or `HIFI_TOKEN`.
    pub secret: String,
}

/// A token just revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevokedToken {
    /// Its name.
    pub name: String,
    /// False when it had been revoked before.
    pub new: bool,
}

impl Project {
    /// Creates a token named `name` acting in `role`, valid for `expires`
    /// (for ever without). Its name is what events made with it record.
    pub fn create_token(
        &mut self,
        actor: &Actor,
        name: &str,
        role: Role,
        expires: Option<Duration>,
    ) -> Result<CreatedToken> {
        self.authorize(actor, Action::ManageTokens)?;
        token::validate_name(name).map_err(Error::BadInput)?;
        let mut random = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut random)
            .map_err(|e| Error::Io(format!("no randomness for a token secret: {e}")))?;
        let secret = Secret::from_random(&random);
        let audit = self.audit(actor);
        let expires_at = match expires {
            None => None,
            Some(d) if d.is_zero() => {
                return Err(Error::BadInput(
                    "a token that expires at once is of no use; give --expires a positive duration like 90d".into(),
                ));
            }
            Some(d) => Some(
                audit
                    .at
                    .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            ),
        };
        let new = NewToken {
            name,
            role,
            lookup: secret.lookup(),
            hash: &secret.hash(),
            expires_at,
        };
        let token = match self.store.create_token(&audit, new) {
            Err(hifi_store::Error::AlreadyExists { .. }) => {
                return Err(Error::TokenExists {
                    name: name.to_string(),
                });
            }
            other => other?,
        };
        Ok(CreatedToken {
            token,
            secret: secret.expose().to_string(),
        })
    }

    /// Every token (never their secrets).
    pub fn tokens(&self, actor: &Actor) -> Result<Vec<TokenRow>> {
        self.authorize(actor, Action::ManageTokens)?;
        Ok(self.store.tokens()?)
    }

    /// Revokes a token: it authenticates no more.
    pub fn revoke_token(&mut self, actor: &Actor, name: &str) -> Result<RevokedToken> {
        self.authorize(actor, Action::ManageTokens)?;
        let audit = self.audit(actor);
        match self.store.revoke_token(&audit, name) {
            Err(hifi_store::Error::NotFound { .. }) => Err(Error::UnknownToken {
                name: name.to_string(),
            }),
            other => Ok(RevokedToken {
                name: name.to_string(),
                new: other?,
            }),
        }
    }

    /// The actor the token named `name` stands for while it stays valid
    /// (known, not revoked, not expired): what a dashboard session made
    /// with its secret acts as, checked again on every request so revoking
    /// the token ends its sessions.
    pub fn token_actor(&self, name: &str) -> Result<Actor> {
        let refuse = |reason: String| Error::Unauthenticated { reason };
        let Some(row) = self.store.tokens()?.into_iter().find(|t| t.name == name) else {
            return Err(refuse(format!("token {name} no longer exists")));
        };
        if row.revoked_at.is_some() {
            return Err(refuse(format!("token {name} was revoked")));
        }
        if row.expires_at.is_some_and(|at| at <= self.now()) {
            return Err(refuse(format!("token {name} has expired")));
        }
        Ok(Actor {
            name: row.name,
            role: row.role,
        })
    }

    /// The actor a presented secret stands for, if it is a valid token:
    /// known, matching its stored hash (compared in constant time), not
    /// revoked, not expired. The reason of a refusal never holds the secret.
    pub fn authenticate(&mut self, presented: &str) -> Result<Actor> {
        let refuse = |reason: &str| Error::Unauthenticated {
            reason: reason.to_string(),
        };
        let Some(secret) = Secret::parse(presented.trim()) else {
            return Err(refuse("that is not a hifi token"));
        };
        let Some(stored) = self.store.token_by_lookup(secret.lookup())? else {
            return Err(refuse("unknown token"));
        };
        if !secret.verify(&stored.hash) {
            return Err(refuse("unknown token"));
        }
        let now = self.now();
        if stored.row.revoked_at.is_some() {
            return Err(refuse(&format!("token {} was revoked", stored.row.name)));
        }
        if stored.row.expires_at.is_some_and(|at| at <= now) {
            return Err(refuse(&format!("token {} has expired", stored.row.name)));
        }
        // Noting its use is a courtesy; a busy database must not refuse it.
        if let Err(e) = self.store.touch_token(&stored.row.name, now) {
            tracing::debug!("could not note the use of token {}: {e}", stored.row.name);
        }
        Ok(Actor {
            name: stored.row.name,
            role: stored.row.role,
        })
    }

    /// Keeps the dashboard session whose id hashes to `hash` (SHA-256,
    /// hex) for `actor` until `expires_at`, so that a restarted server
    /// still knows it. Whoever calls has authenticated the actor.
    pub fn keep_session(&mut self, hash: &str, actor: &Actor, expires_at: i64) -> Result<()> {
        let now = self.now();
        let row = SessionRow {
            hash: hash.to_owned(),
            token: actor.name.clone(),
            role: actor.role,
            expires_at,
        };
        Ok(self.store.put_session(&row, now)?)
    }

    /// Forgets a dashboard session (signed out).
    pub fn forget_session(&mut self, hash: &str) -> Result<()> {
        Ok(self.store.delete_session(hash)?)
    }

    /// The dashboard sessions that have not ended.
    pub fn live_sessions(&self) -> Result<Vec<SessionRow>> {
        Ok(self.store.live_sessions(self.now())?)
    }
}
