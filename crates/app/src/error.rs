//! Why an operation or a view did not succeed, as data: each variant holds
//! what a shell needs to tell the user — the message ([`Display`]), what to
//! do ([`Error::hint`]), how bad it is ([`Error::kind`], which the CLI maps to
//! an exit code and the API to a status) and a stable [`Error::code`] for
//! programs. No shell decides a rule by reading an error's text.
//!
//! [`Display`]: std::fmt::Display

use std::path::PathBuf;

use hifi_core::card::CardId;
use hifi_core::fidelity::Refusal;
use hifi_core::{ConfigError, ReleaseId};

/// What kind of failure: decides the exit code and the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// hifi was run where it cannot work (no repository, no `hifi.toml`):
    /// exit 2.
    Usage,
    /// A value given is malformed (a bad card id, an unknown stage, a
    /// branch name git would refuse): exit 1, HTTP 400.
    Invalid,
    /// `hifi.toml` is wrong: exit 2.
    Config,
    /// Something named does not exist: exit 1, HTTP 404.
    NotFound,
    /// No valid credentials (a remote CLI or API caller): exit 1, HTTP 401.
    Unauthenticated,
    /// The actor's role does not allow it: exit 1, HTTP 403.
    Forbidden,
    /// Refused by a rule of hifi, or it conflicts with the state: exit 1,
    /// HTTP 409.
    Refused,
    /// hifi could not do it (I/O, git, the state database): exit 1, HTTP 500.
    Internal,
}

/// A `hifi.toml` and what is wrong with it.
#[derive(Debug)]
pub struct BadConfig {
    /// The file, relative to the repository root.
    pub path: PathBuf,
    /// Its text, to draw the offending line.
    pub source: String,
    /// What is wrong.
    pub error: ConfigError,
}

/// A promotion that would take a live fix back out.
#[derive(Debug)]
pub struct Regression {
    /// The release offered.
    pub release: ReleaseId,
    /// The environment.
    pub env: String,
    /// The hotfix card.
    pub card: CardId,
    /// Its branch.
    pub branch: String,
    /// The commit of it that is live.
    pub commit: String,
    /// The base branch.
    pub base: String,
}

/// Everything that can go wrong, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory is not in a git repository with a work tree.
    #[error("{0}")]
    NotARepository(String),
    /// There is no `hifi.toml`.
    #[error("no hifi.toml in {}; run `hifi init` to create one", root.display())]
    NoConfig {
        /// The repository root.
        root: PathBuf,
    },
    /// `hifi.toml` cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    UnreadableConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `hifi.toml` is invalid.
    #[error("{}: {}", .0.path.display(), .0.error)]
    Config(Box<BadConfig>),
    /// `hifi init` found a `hifi.toml`.
    #[error("{} already exists; hifi init never overwrites it", path.display())]
    ConfigExists {
        /// The file.
        path: PathBuf,
    },
    /// Input that names nothing valid (a card id, a stage, a branch name).
    #[error("{0}")]
    BadInput(String),
    /// No environment of that name.
    #[error("unknown environment `{name}`; hifi.toml defines: {}", known.join(", "))]
    UnknownEnvironment {
        /// The name given.
        name: String,
        /// The environments there are.
        known: Vec<String>,
    },
    /// No card of that id.
    #[error("unknown card {id}")]
    UnknownCard {
        /// The id.
        id: CardId,
    },
    /// A card of that id exists.
    #[error("card {id} already exists")]
    CardExists {
        /// The id.
        id: CardId,
    },
    /// A card sits at a stage the workflow lost.
    #[error("card {card} is at stage `{stage}`, which the workflow in hifi.toml no longer has")]
    StageGone {
        /// The card.
        card: String,
        /// Its stage.
        stage: String,
    },
    /// No release matches; or an id too short or ambiguous.
    #[error("{0}")]
    UnknownRelease(String),
    /// An environment that promotes is never composed.
    #[error(
        "{env} is never composed: it promotes from {from} and takes only releases verified there"
    )]
    NeverComposed {
        /// The environment.
        env: String,
        /// Where it promotes from.
        from: String,
    },
    /// The repository has no commit.
    #[error("the repository has no commits yet")]
    NoCommits {
        /// The base branch.
        base: String,
    },
    /// The base branch does not exist.
    #[error("the base branch {base} does not exist")]
    NoBase {
        /// Its name.
        base: String,
    },
    /// A card's branch does not exist.
    #[error("card {card}'s branch {branch} does not exist")]
    NoBranch {
        /// The card.
        card: CardId,
        /// Its branch.
        branch: String,
        /// The environment being composed.
        env: String,
    },
    /// A card could not be merged.
    #[error("{message}")]
    Conflict {
        /// The whole sentence: environment, card, what it clashes with, files.
        message: String,
        /// The card's branch.
        branch: String,
        /// The card.
        card: CardId,
        /// The environment.
        env: String,
    },
    /// A service's directory is missing from a composition.
    #[error("service {service}'s directory `{path}` does not exist in {env}'s composition")]
    NoServiceDirectory {
        /// The service.
        service: String,
        /// Its path.
        path: String,
        /// The environment.
        env: String,
    },
    /// A service's build failed.
    #[error("{0}")]
    BuildFailed(String),
    /// A service's tree holds something an artifact must not (a symlink out
    /// of its directory).
    #[error("{0}")]
    UnsafeArtifact(String),
    /// A hotfix environment whose target runs nothing yet.
    #[error("{env} is composed onto {target}'s live release, and {target} has none yet")]
    NothingToFix {
        /// The hotfix environment.
        env: String,
        /// The environment it fixes.
        target: String,
    },
    /// A promotion would take a live fix back out.
    #[error(
        "release {} lacks hotfix card {} ({}), which is live in {}; promoting it would undo the fix",
        .0.release, .0.card, .0.commit, .0.env
    )]
    WouldRegress(Box<Regression>),
    /// Outside the environment's promotion windows.
    #[error("{env} takes new deployments only within {windows}; the next opens {next}")]
    OutsideWindow {
        /// The environment.
        env: String,
        /// Its windows, as written.
        windows: String,
        /// When the next opens, in its zone.
        next: String,
        /// Whether this is a hotfix promotion (which may go with a reason).
        hotfix: bool,
    },
    /// A release that was rejected.
    #[error("release {release} was rejected ({reason}) and never goes live again")]
    Rejected {
        /// The release.
        release: ReleaseId,
        /// Why.
        reason: String,
    },
    /// A composed environment was never composed.
    #[error("{env} was never composed")]
    NotComposed {
        /// The environment.
        env: String,
    },
    /// A gated environment takes only promotions.
    #[error("{env} takes only releases verified in {from}")]
    PromoteOnly {
        /// The environment.
        env: String,
        /// Where it promotes from.
        from: String,
    },
    /// The fidelity gate refused: not composed here.
    #[error(
        "release {release} was not composed for {env}; {env} runs only its own compositions (run `hifi compose {env}`)"
    )]
    NotComposedHere {
        /// The release.
        release: ReleaseId,
        /// The environment.
        env: String,
    },
    /// The fidelity gate refused: not verified where the environment promotes from.
    #[error(
        "release {release} is not verified in {from}, and {env} only takes releases verified there; deploy it to {from} and let it run healthy as the active release for {from}'s soak time"
    )]
    NotVerified {
        /// The release.
        release: ReleaseId,
        /// The environment.
        env: String,
        /// Where it must be verified first.
        from: String,
    },
    /// The fidelity gate refused: approvals missing.
    #[error(
        "release {release} has {have} of the {need} approval(s) {env} requires{}; sign it off with `hifi approve {env} --release {release}`",
        four_eyes_note(.env, .own_excluded.as_deref())
    )]
    NeedsApproval {
        /// The release.
        release: ReleaseId,
        /// The environment.
        env: String,
        /// Approvals recorded.
        have: usize,
        /// Approvals required.
        need: u32,
        /// Under four-eyes, the deployer whose own sign-off did not count.
        own_excluded: Option<String>,
    },
    /// The release already serves the environment.
    #[error("release {release} is already live in {env}; there is nothing to deploy")]
    AlreadyLive {
        /// The release.
        release: ReleaseId,
        /// The environment.
        env: String,
    },
    /// A deployment is already in progress.
    #[error("deployment #{deployment} is in progress in {env}")]
    Busy {
        /// The environment.
        env: String,
        /// The deployment.
        deployment: i64,
    },
    /// A promotion from the wrong environment.
    #[error("{env} promotes from {expected}, not from {from}")]
    WrongSource {
        /// The target.
        env: String,
        /// Where it promotes from.
        expected: String,
        /// Where the promotion was asked from.
        from: String,
    },
    /// A promotion into an environment composed from cards.
    #[error("{env} is composed from cards, not promoted into")]
    NotPromoted {
        /// The environment.
        env: String,
    },
    /// Nothing live to promote.
    #[error("{env} has no live release to promote")]
    NothingLive {
        /// The environment.
        env: String,
    },
    /// A rollback while a deployment is in progress.
    #[error("deployment #{deployment} is in progress in {env}; nothing went live yet to roll back")]
    RollbackDuringDeployment {
        /// The environment.
        env: String,
        /// The deployment.
        deployment: i64,
    },
    /// Nothing to roll back to.
    #[error("{env} has no previous state to go back to")]
    NothingToRollBack {
        /// The environment.
        env: String,
    },
    /// A canary action without a deployment.
    #[error("no deployment is in progress in {env}")]
    NoDeployment {
        /// The environment.
        env: String,
    },
    /// Pause, resume or promote of a deployment that is not a canary.
    #[error("deployment #{deployment} in {env} is {kind}, not a canary; it can only be aborted")]
    NotACanary {
        /// The environment.
        env: String,
        /// The deployment.
        deployment: i64,
        /// What it is.
        kind: hifi_core::Kind,
    },
    /// The deployment ended between reading and writing it.
    #[error("{reason}")]
    DeploymentEnded {
        /// What happened.
        reason: String,
        /// The environment.
        env: String,
    },
    /// Nothing to approve.
    #[error("nothing to approve for {env}: {why}")]
    NothingToApprove {
        /// The environment.
        env: String,
        /// Why.
        why: String,
        /// What to do.
        hint: String,
    },
    /// The state database is empty although `.hifi/` shows a previous run.
    #[error("the state database {} holds nothing, but .hifi/ shows a previous run: {}", db.display(), found.join("; "))]
    StateLost {
        /// The database.
        db: PathBuf,
        /// What was found.
        found: Vec<String>,
    },
    /// No backup of that name.
    #[error("no backup named `{name}`")]
    UnknownBackup {
        /// The name given.
        name: String,
    },
    /// No backup at all.
    #[error("there is no backup of the state to restore")]
    NoBackup,
    /// The control plane is not running.
    #[error("hifi is not running, so nothing would deploy while you wait")]
    NotRunning,
    /// The control plane runs already.
    #[error("hifi is already running here (pid {pid})")]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
    },
    /// Nothing runs to stop.
    #[error("hifi is not running here; there is nothing to stop")]
    NothingToStop,
    /// The control plane stopped while a deployment was followed.
    #[error("hifi stopped while deployment #{deployment} was {state}")]
    StoppedWhileFollowing {
        /// The deployment.
        deployment: i64,
        /// Where it stood.
        state: hifi_core::DeploymentState,
    },
    /// A followed deployment did not go live.
    #[error("deployment #{deployment} {state}: {reason}")]
    DeploymentDidNotGoLive {
        /// The deployment.
        deployment: i64,
        /// How it ended.
        state: hifi_core::DeploymentState,
        /// Why.
        reason: String,
    },
    /// The actor's role does not allow the action.
    #[error("{actor} ({role}) may not {action}")]
    Forbidden {
        /// Who.
        actor: String,
        /// In what role.
        role: hifi_core::Role,
        /// What they tried.
        action: &'static str,
    },
    /// No valid token was presented.
    #[error("{reason}")]
    Unauthenticated {
        /// Why, without the secret.
        reason: String,
    },
    /// A token of that name is in use.
    #[error("a token named {name} exists already")]
    TokenExists {
        /// Its name.
        name: String,
    },
    /// No token of that name.
    #[error("no token named {name}")]
    UnknownToken {
        /// The name given.
        name: String,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] hifi_store::Error),
    /// Git failed.
    #[error(transparent)]
    Git(#[from] hifi_git::Error),
    /// Building or finding an artifact failed.
    #[error(transparent)]
    Artifacts(#[from] hifi_artifacts::Error),
    /// The control plane failed.
    #[error(transparent)]
    Controller(#[from] hifi_controller::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The environment does not run on Kubernetes, so it has no objects.
    #[error("environment {env} runs on {runtime}, not on Kubernetes; it has no Kubernetes objects")]
    NotOnKubernetes {
        /// The environment.
        env: String,
        /// Its runtime.
        runtime: String,
    },
    /// An image of the release was never pushed to the registry.
    #[error(
        "release {release} has no image of service {service} in {repository} yet, so {env}'s objects cannot name it by digest"
    )]
    NotPushed {
        /// The environment.
        env: String,
        /// The release.
        release: hifi_core::ReleaseId,
        /// The service.
        service: String,
        /// Where it would be.
        repository: String,
    },
}

/// Result with the application's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e.to_string())
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        match refusal {
            Refusal::Rejected {
                release, reason, ..
            } => Error::Rejected { release, reason },
            Refusal::NotComposedHere { env, release } => Error::NotComposedHere { release, env },
            Refusal::NotVerified {
                env,
                source,
                release,
            } => Error::NotVerified {
                release,
                env,
                from: source,
            },
            Refusal::MissingApprovals {
                env,
                release,
                have,
                need,
                own_excluded,
            } => Error::NeedsApproval {
                release,
                env,
                have,
                need,
                own_excluded,
            },
        }
    }
}

impl Error {
    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            NotARepository(_) | NoConfig { .. } | UnreadableConfig { .. } => ErrorKind::Usage,
            BadInput(_) => ErrorKind::Invalid,
            Config(_) => ErrorKind::Config,
            UnknownEnvironment { .. }
            | UnknownCard { .. }
            | UnknownRelease(_)
            | UnknownToken { .. } => ErrorKind::NotFound,
            Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Forbidden { .. } => ErrorKind::Forbidden,
            Store(hifi_store::Error::NotFound { .. }) | UnknownBackup { .. } => ErrorKind::NotFound,
            Store(hifi_store::Error::Refused(_) | hifi_store::Error::Ambiguous { .. }) => {
                ErrorKind::Refused
            }
            Store(_) | Git(_) | Artifacts(_) | Controller(_) | Io(_) => ErrorKind::Internal,
            _ => ErrorKind::Refused,
        }
    }

    /// A stable, machine-readable name of the failure (`not_verified`).
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            NotARepository(_) => "not_a_repository",
            NoConfig { .. } => "no_config",
            UnreadableConfig { .. } => "unreadable_config",
            Config(_) => "invalid_config",
            ConfigExists { .. } => "config_exists",
            BadInput(_) => "bad_input",
            UnknownEnvironment { .. } => "unknown_environment",
            UnknownCard { .. } => "unknown_card",
            CardExists { .. } => "card_exists",
            StageGone { .. } => "stage_gone",
            UnknownRelease(_) => "unknown_release",
            NeverComposed { .. } => "never_composed",
            NoCommits { .. } => "no_commits",
            NoBase { .. } => "no_base_branch",
            NoBranch { .. } => "no_card_branch",
            Conflict { .. } => "conflict",
            NoServiceDirectory { .. } => "no_service_directory",
            BuildFailed(_) => "build_failed",
            UnsafeArtifact(_) => "unsafe_artifact",
            NotComposed { .. } => "not_composed",
            NothingToFix { .. } => "nothing_to_fix",
            WouldRegress(_) => "would_regress",
            OutsideWindow { .. } => "outside_window",
            Rejected { .. } => "rejected",
            PromoteOnly { .. } => "promote_only",
            NotComposedHere { .. } => "not_composed_here",
            NotVerified { .. } => "not_verified",
            NeedsApproval { .. } => "needs_approval",
            AlreadyLive { .. } => "already_live",
            Busy { .. } => "deployment_in_progress",
            WrongSource { .. } => "wrong_source",
            NotPromoted { .. } => "not_promoted",
            NothingLive { .. } => "nothing_live",
            RollbackDuringDeployment { .. } => "deployment_in_progress",
            NothingToRollBack { .. } => "nothing_to_roll_back",
            NoDeployment { .. } => "no_deployment",
            NotACanary { .. } => "not_a_canary",
            DeploymentEnded { .. } => "deployment_ended",
            NothingToApprove { .. } => "nothing_to_approve",
            StateLost { .. } => "state_lost",
            UnknownBackup { .. } => "unknown_backup",
            NoBackup => "no_backup",
            NotRunning => "not_running",
            AlreadyRunning { .. } => "already_running",
            NothingToStop => "nothing_to_stop",
            StoppedWhileFollowing { .. } => "stopped_while_following",
            DeploymentDidNotGoLive { .. } => "deployment_not_live",
            Forbidden { .. } => "forbidden",
            Unauthenticated { .. } => "unauthenticated",
            TokenExists { .. } => "token_exists",
            UnknownToken { .. } => "unknown_token",
            Store(_) => "store",
            Git(_) => "git",
            Artifacts(_) => "artifacts",
            Controller(_) => "controller",
            Io(_) => "io",
            NotOnKubernetes { .. } => "not_on_kubernetes",
            NotPushed { .. } => "not_pushed",
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        use Error::*;
        Some(match self {
            UnknownCard { .. } => "see the cards with `hifi card list`".into(),
            CardExists { id } => {
                format!("pick another id, or move it with `hifi card move {id} STAGE`")
            }
            StageGone { card, .. } => {
                format!("move it to an existing stage: hifi card move {card} STAGE")
            }
            ConfigExists { .. } => "edit it by hand, or remove it first to start over".into(),
            NeverComposed { env, from } => format!(
                "compose {from} instead, and promote its verified release with `hifi promote {from} {env}`"
            ),
            NoCommits { base } => format!("commit to the base branch {base} first"),
            NoBase { .. } => "create it, or set `base` under [project] in hifi.toml".into(),
            NoBranch { card, env, .. } => format!(
                "push the branch, fix it with `hifi card rm {card}` and `hifi card add {card} --branch ...`, or move the card out of {env}"
            ),
            Conflict {
                branch, card, env, ..
            } => format!(
                "resolve the conflict on {branch} (merge the other branch into it and fix the files), or move {card} back out of {env}"
            ),
            NoServiceDirectory { .. } => {
                "fix `path` in hifi.toml, or make sure the base branch or a card adds that directory"
                    .into()
            }
            BuildFailed(_) => "fix the build on the card's branch (or the base branch) and compose again; nothing was changed".into(),
            UnsafeArtifact(_) => "replace the link with what it points to, or point it inside the service's directory; nothing was changed".into(),
            NotComposed { env } => format!("compose it first: hifi compose {env}"),
            NothingToFix { target, .. } => format!("deploy a release to {target} first"),
            WouldRegress(r) => format!(
                "let the fix reach this release: move {card} through the stages (`hifi card move {card} STAGE`) so the compositions include {branch}, or merge {branch} into {base}; then compose again",
                card = r.card,
                branch = r.branch,
                base = r.base
            ),
            OutsideWindow { hotfix: true, .. } => "a hotfix may go now with a reason on record: add --reason \"...\"".into(),
            OutsideWindow { .. } => "wait for the window, or roll back, which is never held by one".into(),
            PromoteOnly { env, from } => format!("promote one: hifi promote {from} {env}"),
            AlreadyLive { .. } => "compose a new release, or roll back with `hifi rollback`".into(),
            Busy { env, .. } => format!(
                "wait for it (`hifi status {env}`), or abort it with `hifi canary {env} abort`"
            ),
            WrongSource { env, expected, .. } => format!("hifi promote {expected} {env}"),
            NotPromoted { env } => format!("hifi compose {env} && hifi deploy {env}"),
            NothingLive { env } => format!("deploy one first: hifi deploy {env}"),
            RollbackDuringDeployment { env, .. } => {
                format!("abort it instead: hifi canary {env} abort")
            }
            NothingToRollBack { .. } => {
                "a rollback needs an earlier release that was live here".into()
            }
            NoDeployment { env } => format!("see `hifi status {env}`"),
            DeploymentEnded { env, .. } => format!(
                "if it went live and should not have, roll it back: hifi rollback {env}"
            ),
            NothingToApprove { hint, .. } => hint.clone(),
            StateLost { .. } => "restore the state from its latest backup with `hifi state restore` (see `hifi state backups`), or start over knowingly with `hifi up --reset-state`, which stops what runs and forgets it".into(),
            UnknownBackup { .. } => "see the backups with `hifi state backups`".into(),
            Store(hifi_store::Error::Damaged { .. }) => "restore a backup: `hifi state backups`, then `hifi state restore NAME`".into(),
            NotRunning => "start it first: hifi up --detach".into(),
            AlreadyRunning { .. } => {
                "stop it with `hifi down`, or see what it does with `hifi status`".into()
            }
            NothingToStop => "start it with `hifi up`".into(),
            StoppedWhileFollowing { .. } => {
                "start it again with `hifi up`; the deployment resumes where it was".into()
            }
            Forbidden { .. } => "ask someone whose role allows it, or an admin for another role".into(),
            NeedsApproval { own_excluded: Some(own), env, .. } => format!(
                "{env} is four-eyes: someone other than {own} must sign it off, or someone else deploys it"
            ),
            Unauthenticated { .. } => "send a valid token (HIFI_TOKEN, or `Authorization: Bearer ...`); an admin creates one with `hifi token create NAME --role ROLE`".into(),
            TokenExists { name } => format!("pick another name, or revoke it first: hifi token revoke {name}"),
            UnknownToken { .. } => "see the tokens with `hifi token list`".into(),
            NotOnKubernetes { env, .. } => format!("set `runtime = \"kubernetes\"` for {env} in hifi.toml"),
            NotPushed { .. } => "compose again with the Docker engine and the registry reachable (composing pushes each image once), or deploy: the controller pushes what is missing".into(),
            _ => return None,
        })
    }
}

/// The four-eyes clause of a missing-approvals refusal.
fn four_eyes_note(env: &str, own: Option<&str>) -> String {
    own.map(|own| {
        format!(" ({env} is four-eyes: {own}'s own sign-off does not count for {own}'s deployment)")
    })
    .unwrap_or_default()
}
