//! Where a command's operations run: on `.hifi/` here, through the
//! application layer as the OS user ([`Local`]), or on a team server
//! through its API as a token's holder ([`Remote`]). Both answer with the
//! application layer's own types, so each command renders one way and
//! prints the same locally and remotely.

use hifi_app::cards::{Added, Board, CardView, Moved};
use hifi_app::deploy::{CanaryAction, Recorded, Start, Started};
use hifi_app::releases::{Approved, DiffView, RejectedRelease, ReleaseDetail, ReleaseSummary};
use hifi_app::reports::{ComposeReport, Progress};
use hifi_app::state::{BackupView, Restored};
use hifi_app::status::{HistoryEntry, Status};
use hifi_app::tokens::{CreatedToken, RevokedToken};
use hifi_app::{Actor, Project, Role};
use hifi_core::CardId;
use hifi_server::client::{Client, ClientError};
use hifi_store::TokenRow;

use crate::error::{Failure, Result};

/// Every operation and view a command may ask for.
pub trait Hifi {
    /// Registers a card.
    fn add_card(&mut self, id: &str, branch: &str, title: &str, hotfix: bool) -> Result<Added>;
    /// Moves a card.
    fn move_card(&mut self, id: &str, stage: &str) -> Result<Moved>;
    /// Removes a card.
    fn remove_card(&mut self, id: &str) -> Result<CardId>;
    /// Every card.
    fn cards(&mut self) -> Result<Vec<CardView>>;
    /// The board.
    fn board(&mut self) -> Result<Board>;
    /// Composes an environment (progress lines go to `progress`).
    fn compose(&mut self, env: &str, progress: &mut dyn FnMut(&str)) -> Result<ComposeReport>;
    /// Every release.
    fn releases(&mut self) -> Result<Vec<ReleaseSummary>>;
    /// A release's fidelity chain.
    fn release(&mut self, id: &str) -> Result<ReleaseDetail>;
    /// Rejects a release.
    fn reject(&mut self, id: &str, reason: &str) -> Result<RejectedRelease>;
    /// The diff of two environments.
    fn diff(&mut self, a: &str, b: &str) -> Result<DiffView>;
    /// Signs off a release.
    fn approve(&mut self, env: &str, release: Option<&str>) -> Result<Approved>;
    /// Deploys.
    fn deploy(&mut self, env: &str, release: Option<&str>, how: Start<'_>) -> Result<Started>;
    /// Promotes.
    fn promote(&mut self, from: &str, to: &str, how: Start<'_>) -> Result<Started>;
    /// Rolls back.
    fn rollback(&mut self, env: &str, how: Start<'_>) -> Result<Started>;
    /// Steers a canary.
    fn canary(&mut self, env: &str, action: CanaryAction) -> Result<Recorded>;
    /// What runs where.
    fn status(&mut self, env: Option<&str>) -> Result<Status>;
    /// An environment's history.
    fn history(&mut self, env: &str) -> Result<Vec<HistoryEntry>>;
    /// A deployment and its events so far.
    fn progress(&mut self, id: i64) -> Result<Progress>;
    /// The state's backups.
    fn backups(&mut self) -> Result<Vec<BackupView>>;
    /// Restores a backup.
    fn restore(&mut self, backup: Option<&str>) -> Result<Restored>;
    /// Creates a token.
    fn create_token(
        &mut self,
        name: &str,
        role: Role,
        expires: Option<&str>,
    ) -> Result<CreatedToken>;
    /// Every token.
    fn tokens(&mut self) -> Result<Vec<TokenRow>>;
    /// Revokes a token.
    fn revoke_token(&mut self, name: &str) -> Result<RevokedToken>;
}

/// `.hifi/` here, as `actor`.
pub struct Local {
    /// The project.
    pub project: Project,
    /// Who acts.
    pub actor: Actor,
}

/// A team server.
pub struct Remote(pub Client);

impl Hifi for Local {
    fn add_card(&mut self, id: &str, branch: &str, title: &str, hotfix: bool) -> Result<Added> {
        Ok(self
            .project
            .add_card(&self.actor, id, branch, title, hotfix)?)
    }
    fn move_card(&mut self, id: &str, stage: &str) -> Result<Moved> {
        Ok(self.project.move_card(&self.actor, id, stage)?)
    }
    fn remove_card(&mut self, id: &str) -> Result<CardId> {
        Ok(self.project.remove_card(&self.actor, id)?)
    }
    fn cards(&mut self) -> Result<Vec<CardView>> {
        Ok(self.project.cards(&self.actor)?)
    }
    fn board(&mut self) -> Result<Board> {
        Ok(self.project.board(&self.actor)?)
    }
    fn compose(&mut self, env: &str, progress: &mut dyn FnMut(&str)) -> Result<ComposeReport> {
        Ok(self.project.compose_report(&self.actor, env, progress)?)
    }
    fn releases(&mut self) -> Result<Vec<ReleaseSummary>> {
        Ok(self.project.releases(&self.actor)?)
    }
    fn release(&mut self, id: &str) -> Result<ReleaseDetail> {
        Ok(self.project.release(&self.actor, id)?)
    }
    fn reject(&mut self, id: &str, reason: &str) -> Result<RejectedRelease> {
        Ok(self.project.reject(&self.actor, id, reason)?)
    }
    fn diff(&mut self, a: &str, b: &str) -> Result<DiffView> {
        Ok(self.project.diff(&self.actor, a, b)?)
    }
    fn approve(&mut self, env: &str, release: Option<&str>) -> Result<Approved> {
        Ok(self.project.approve(&self.actor, env, release)?)
    }
    fn deploy(&mut self, env: &str, release: Option<&str>, how: Start<'_>) -> Result<Started> {
        Ok(self.project.deploy(&self.actor, env, release, how)?)
    }
    fn promote(&mut self, from: &str, to: &str, how: Start<'_>) -> Result<Started> {
        Ok(self.project.promote(&self.actor, from, to, how)?)
    }
    fn rollback(&mut self, env: &str, how: Start<'_>) -> Result<Started> {
        Ok(self.project.rollback(&self.actor, env, how)?)
    }
    fn canary(&mut self, env: &str, action: CanaryAction) -> Result<Recorded> {
        Ok(self.project.canary(&self.actor, env, action)?)
    }
    fn status(&mut self, env: Option<&str>) -> Result<Status> {
        Ok(self.project.status(&self.actor, env)?)
    }
    fn history(&mut self, env: &str) -> Result<Vec<HistoryEntry>> {
        Ok(self.project.history(&self.actor, env)?)
    }
    fn progress(&mut self, id: i64) -> Result<Progress> {
        Ok(self.project.progress(&self.actor, id)?)
    }
    fn backups(&mut self) -> Result<Vec<BackupView>> {
        Ok(self.project.backups(&self.actor)?)
    }
    fn restore(&mut self, backup: Option<&str>) -> Result<Restored> {
        Ok(self.project.restore(&self.actor, backup)?)
    }
    fn create_token(
        &mut self,
        name: &str,
        role: Role,
        expires: Option<&str>,
    ) -> Result<CreatedToken> {
        let expires = expires
            .map(hifi_core::duration::parse)
            .transpose()
            .map_err(|m| Failure::App(hifi_app::Error::BadInput(format!("--expires: {m}"))))?;
        Ok(self
            .project
            .create_token(&self.actor, name, role, expires)?)
    }
    fn tokens(&mut self) -> Result<Vec<TokenRow>> {
        Ok(self.project.tokens(&self.actor)?)
    }
    fn revoke_token(&mut self, name: &str) -> Result<RevokedToken> {
        Ok(self.project.revoke_token(&self.actor, name)?)
    }
}

fn remote<T>(result: std::result::Result<T, ClientError>) -> Result<T> {
    result.map_err(Failure::Remote)
}

impl Hifi for Remote {
    fn add_card(&mut self, id: &str, branch: &str, title: &str, hotfix: bool) -> Result<Added> {
        remote(self.0.add_card(id, branch, title, hotfix))
    }
    fn move_card(&mut self, id: &str, stage: &str) -> Result<Moved> {
        remote(self.0.move_card(id, stage))
    }
    fn remove_card(&mut self, id: &str) -> Result<CardId> {
        remote(self.0.remove_card(id)).map(|r| r.removed)
    }
    fn cards(&mut self) -> Result<Vec<CardView>> {
        remote(self.0.cards())
    }
    fn board(&mut self) -> Result<Board> {
        remote(self.0.board())
    }
    fn compose(&mut self, env: &str, progress: &mut dyn FnMut(&str)) -> Result<ComposeReport> {
        // The server composes; its progress lines come with the report.
        let report = remote(self.0.compose(env))?;
        for step in &report.steps {
            progress(step);
        }
        Ok(report)
    }
    fn releases(&mut self) -> Result<Vec<ReleaseSummary>> {
        remote(self.0.releases())
    }
    fn release(&mut self, id: &str) -> Result<ReleaseDetail> {
        remote(self.0.release(id))
    }
    fn reject(&mut self, id: &str, reason: &str) -> Result<RejectedRelease> {
        remote(self.0.reject(id, reason))
    }
    fn diff(&mut self, a: &str, b: &str) -> Result<DiffView> {
        remote(self.0.diff(a, b))
    }
    fn approve(&mut self, env: &str, release: Option<&str>) -> Result<Approved> {
        remote(self.0.approve(env, release))
    }
    fn deploy(&mut self, env: &str, release: Option<&str>, how: Start<'_>) -> Result<Started> {
        remote(self.0.deploy(env, release, how.require_running))
    }
    fn promote(&mut self, from: &str, to: &str, how: Start<'_>) -> Result<Started> {
        remote(self.0.promote(from, to, how.reason, how.require_running))
    }
    fn rollback(&mut self, env: &str, how: Start<'_>) -> Result<Started> {
        remote(self.0.rollback(env, how.require_running))
    }
    fn canary(&mut self, env: &str, action: CanaryAction) -> Result<Recorded> {
        remote(self.0.canary(env, action))
    }
    fn status(&mut self, env: Option<&str>) -> Result<Status> {
        remote(self.0.status(env))
    }
    fn history(&mut self, env: &str) -> Result<Vec<HistoryEntry>> {
        remote(self.0.history(env))
    }
    fn progress(&mut self, id: i64) -> Result<Progress> {
        remote(self.0.progress(id))
    }
    fn backups(&mut self) -> Result<Vec<BackupView>> {
        remote(self.0.backups())
    }
    fn restore(&mut self, backup: Option<&str>) -> Result<Restored> {
        remote(self.0.restore(backup))
    }
    fn create_token(
        &mut self,
        name: &str,
        role: Role,
        expires: Option<&str>,
    ) -> Result<CreatedToken> {
        remote(self.0.create_token(name, role, expires))
    }
    fn tokens(&mut self) -> Result<Vec<TokenRow>> {
        remote(self.0.tokens())
    }
    fn revoke_token(&mut self, name: &str) -> Result<RevokedToken> {
        remote(self.0.revoke_token(name))
    }
}
