//! Domain types as SQLite values (feature `sqlite`): each is stored as its
//! name or id and read back through its own parser, so the store accepts and
//! returns these types and a value no parser accepts surfaces as a
//! conversion error instead of a string compared somewhere.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::access::Role;
use crate::card::CardId;
use crate::deployment::{DeploymentState, Kind, Request};
use crate::event::EventKind;
use crate::health::Health;
use crate::protocol::Protocol;
use crate::release::ReleaseId;
use crate::rollout::{Slot, Verdict};

macro_rules! text_column {
    ($($ty:ty),+ $(,)?) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    )+};
}

text_column!(
    CardId,
    DeploymentState,
    EventKind,
    Health,
    Kind,
    Protocol,
    ReleaseId,
    Request,
    Role,
    Slot,
    Verdict,
);
