//! API tokens as stored: a name (the actor every event made with the token
//! records), a role, and the SHA-256 of the secret — never the secret.
//! Creating and revoking are each one transaction with their audit event.
//!
//! Dashboard sessions, which a token is traded for, are kept here too: the
//! SHA-256 of the session id (never the id), the token's name and role, and
//! when the session ends.

use hifi_core::Role;
use hifi_core::event::EventKind;
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::events::{Subject, record};
use crate::{Audit, Error, Result, Store};

/// A token as listed: everything but its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRow {
    /// Its name, recorded as the actor of what it does.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
    /// When it stops working (unix ms), if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked (unix ms), if it was.
    pub revoked_at: Option<i64>,
    /// When it was last used (unix ms).
    pub last_used_at: Option<i64>,
}

/// A token found by its lookup id, with the hash to verify a secret against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token.
    pub row: TokenRow,
    /// The SHA-256 of its secret, hex.
    pub hash: String,
}

/// A new token's record.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its role.
    pub role: Role,
    /// The lookup id of its secret.
    pub lookup: &'a str,
    /// The SHA-256 of its secret.
    pub hash: &'a str,
    /// When it expires (unix ms), if ever.
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "name, role, created_at, created_by, expires_at, revoked_at, last_used_at";

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        name: r.get(0)?,
        role: r.get(1)?,
        created_at: r.get(2)?,
        created_by: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
        last_used_at: r.get(6)?,
    })
}

impl Store {
    /// Records a token. A name still in use (not revoked, not expired) is
    /// refused; a revoked or expired one's name is taken over.
    pub fn create_token(&mut self, audit: &Audit, token: NewToken<'_>) -> Result<TokenRow> {
        self.write(|tx| {
            let existing: Option<(Option<i64>, Option<i64>)> = tx
                .query_row(
                    "SELECT revoked_at, expires_at FROM tokens WHERE name = ?1",
                    [token.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((revoked, expires)) = existing {
                let usable = revoked.is_none() && expires.is_none_or(|at| at > audit.at);
                if usable {
                    return Err(Error::AlreadyExists {
                        kind: "token",
                        id: token.name.to_string(),
                    });
                }
                tx.execute("DELETE FROM tokens WHERE name = ?1", [token.name])?;
            }
            tx.execute(
                "INSERT INTO tokens (name, role, lookup, hash, created_at, created_by, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    token.name,
                    token.role,
                    token.lookup,
                    token.hash,
                    audit.at,
                    audit.actor,
                    token.expires_at
                ],
            )?;
            let message = format!(
                "{} created token {} ({})",
                audit.actor, token.name, token.role
            );
            record(
                tx,
                audit,
                EventKind::TokenCreated,
                Subject::default(),
                &message,
            )?;
            Ok(TokenRow {
                name: token.name.to_string(),
                role: token.role,
                created_at: audit.at,
                created_by: audit.actor.clone(),
                expires_at: token.expires_at,
                revoked_at: None,
                last_used_at: None,
            })
        })
    }

    /// Revokes a token by name; false if it was revoked already.
    pub fn revoke_token(&mut self, audit: &Audit, name: &str) -> Result<bool> {
        self.write(|tx| {
            let revoked: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_at FROM tokens WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            match revoked {
                None => Err(Error::NotFound {
                    kind: "token",
                    id: name.to_string(),
                }),
                Some(Some(_)) => Ok(false),
                Some(None) => {
                    tx.execute(
                        "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1",
                        params![name, audit.at],
                    )?;
                    let message = format!("{} revoked token {name}", audit.actor);
                    record(
                        tx,
                        audit,
                        EventKind::TokenRevoked,
                        Subject::default(),
                        &message,
                    )?;
                    Ok(true)
                }
            }
        })
    }

    /// Every token, by name.
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        let mut stmt = self
            .conn()
            .prepare(&format!("SELECT {COLUMNS} FROM tokens ORDER BY name"))?;
        let rows = stmt.query_map([], token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The token whose secret has this lookup id, if any.
    pub fn token_by_lookup(&self, lookup: &str) -> Result<Option<StoredToken>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS}, hash FROM tokens WHERE lookup = ?1"),
                [lookup],
                |r| {
                    Ok(StoredToken {
                        row: token_row(r)?,
                        hash: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }

    /// Notes that a token was used (at most once a minute per token, so
    /// reads stay reads under load).
    pub fn touch_token(&mut self, name: &str, at: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE tokens SET last_used_at = ?2
             WHERE name = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60000)",
            params![name, at],
        )?;
        Ok(())
    }
}

/// A dashboard session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The SHA-256 of the session id, hex (64 digits).
    pub hash: String,
    /// The name of the token it was started with.
    pub token: String,
    /// That token's role when the session started.
    pub role: Role,
    /// When it ends (unix ms).
    pub expires_at: i64,
}

impl Store {
    /// Keeps a new session, and forgets the ones ended by `now`.
    pub fn put_session(&mut self, session: &SessionRow, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
            tx.execute(
                "INSERT OR REPLACE INTO sessions (hash, token, role, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![session.hash, session.token, session.role, session.expires_at],
            )?;
            Ok(())
        })
    }

    /// Forgets a session (signed out).
    pub fn delete_session(&mut self, hash: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM sessions WHERE hash = ?1", [hash])?;
        Ok(())
    }

    /// The sessions that have not ended by `now`, the newest first.
    pub fn live_sessions(&self, now: i64) -> Result<Vec<SessionRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT hash, token, role, expires_at FROM sessions WHERE expires_at > ?1 ORDER BY expires_at DESC",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok(SessionRow {
                hash: r.get(0)?,
                token: r.get(1)?,
                role: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
