//! The command line, as clap reads it. Parsing only: each command's work
//! lives in its module under `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// hifi deploys a team's microservices through a chain of environments with
/// high fidelity: what reaches production is, bit for bit, a release already
/// verified below it.
#[derive(Debug, Parser)]
#[command(name = "hifi", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Record changes as made by NAME instead of the OS user.
    #[arg(long = "as", value_name = "NAME", global = true)]
    pub actor: Option<String>,
    /// Run as if hifi was started in DIR.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// Run the command on this team server (http://HOST:PORT or https://...)
    /// instead of on .hifi/ here; every command but init, up, down, proxy
    /// and demo.
    #[arg(long, value_name = "URL", env = "HIFI_SERVER", global = true)]
    pub server: Option<String>,
    /// The API token to present to the team server (prefer HIFI_TOKEN: a
    /// command line is visible to other users of this machine).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HIFI_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Also trust the CA certificates in this PEM file (a team server with
    /// a certificate of its own).
    #[arg(long, value_name = "PEM", env = "HIFI_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold hifi.toml and .hifi/ in a git repository.
    Init,
    /// Register, move, remove and list cards.
    #[command(subcommand)]
    Card(CardCommand),
    /// Cards by stage, and which cards each environment includes.
    Board,
    /// Compose an environment from the base branch and its cards; prints the release id.
    Compose {
        /// The environment to compose.
        env: String,
    },
    /// Releases, newest first.
    Releases,
    /// One release: its fidelity chain.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Cards, service versions and vars that differ between two environments.
    Diff {
        /// The first environment.
        a: String,
        /// The second environment.
        b: String,
    },
    /// Sign off a release for an environment.
    Approve {
        /// The environment the release may then go to.
        env: String,
        /// The release (default: the one that would go there next).
        #[arg(long)]
        release: Option<String>,
    },
    /// Deploy a release to an environment with its strategy.
    Deploy {
        /// The environment.
        env: String,
        /// The release (default: the environment's latest composition).
        #[arg(long)]
        release: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Deploy FROM's verified active release to TO.
    Promote {
        /// The environment the release was verified in.
        from: String,
        /// The environment to deploy it to.
        to: String,
        /// Why a hotfix goes outside TO's windows (recorded with it).
        #[arg(long, value_name = "WHY")]
        reason: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Go back to the previous state in one step.
    Rollback {
        /// The environment.
        env: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Steer a canary in progress.
    Canary {
        /// The environment.
        env: String,
        /// What to do.
        action: CanaryAction,
    },
    /// What runs where: releases per slot, traffic split, health, verification.
    Status {
        /// Only this environment.
        env: Option<String>,
    },
    /// Every deployment of an environment with its steps and figures.
    History {
        /// The environment.
        env: String,
    },
    /// Start the control plane, the data plane and the local runtime.
    Up {
        /// Return once everything is ready, leaving hifi running in the background.
        #[arg(long)]
        detach: bool,
        /// Start from an empty state on purpose: stop and forget what a
        /// previous run left (refused otherwise when one is found).
        #[arg(long)]
        reset_state: bool,
    },
    /// Stop every process hifi started and free every port.
    Down,
    /// The state database's rolling backups.
    #[command(subcommand)]
    State(StateCommand),
    /// API tokens for the team server (admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The whole story on a generated example project.
    Demo {
        /// Short intervals; stop everything at the end; exit 0 only if every claim held.
        #[arg(long)]
        once: bool,
        /// Generate the project here (an empty or new directory) instead of a temporary one.
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// Where the shop's services run: python3 processes, or busybox
        /// containers of the Docker engine on this machine.
        #[arg(long, value_enum, default_value = "local")]
        runtime: DemoRuntime,
    },
    /// The Kubernetes objects of an environment as YAML (review, GitOps).
    Manifests {
        /// The environment (one with runtime = "kubernetes").
        env: String,
        /// The release to render live (default: the live one, else the latest composition).
        #[arg(long)]
        release: Option<String>,
        /// Print instead the Role hifi needs in the environment's namespace.
        #[arg(long, conflicts_with = "release")]
        rbac: bool,
    },
    /// Run the data plane (the proxy) in the foreground; `hifi up` starts it for you.
    Proxy(ProxyArgs),
}

/// `--wait` for commands whose effect takes time.
#[derive(Debug, Args)]
pub struct Wait {
    /// Wait until the deployment is live (exit 0) or failed/aborted (exit 1), showing progress.
    #[arg(long)]
    pub wait: bool,
}

/// Where `hifi demo` runs the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoRuntime {
    /// python3 services as local processes.
    Local,
    /// busybox images as Docker containers (needs an engine and Debian's busybox-static).
    Docker,
}

/// What `hifi canary` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CanaryAction {
    /// Hold the current step: no judgement, no weight change.
    Pause,
    /// Continue a paused canary.
    Resume,
    /// Stop: users go back to the active release, the candidate stops.
    Abort,
    /// Skip the remaining steps and make the candidate active now.
    Promote,
}

/// Options of `hifi proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where routing tables are persisted (default: .hifi/proxy).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The admin unix socket (default: .hifi/proxy.sock).
    #[arg(long, value_name = "PATH")]
    pub admin: Option<PathBuf>,
    /// Threads serving client connections, each with its own runtime and
    /// upstream pools (default: one per CPU); 0 serves them on one shared
    /// work-stealing runtime instead.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Take routing tables from this ConfigMap of the pod's namespace,
    /// watched through the cluster's API server (how the proxy runs in a
    /// Kubernetes environment).
    #[arg(long, value_name = "NAME")]
    pub table_configmap: Option<String>,
    /// Also answer the admin interface's reads (stats, in-flight, health)
    /// on this TCP address, e.g. 0.0.0.0:9900; nothing there changes routing.
    #[arg(long, value_name = "ADDR")]
    pub status_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// The backups of .hifi/state.db, newest first, with what each holds.
    Backups,
    /// Replace the state with a backup (default: the newest); the current
    /// state is saved as a backup first. hifi must not be running.
    Restore {
        /// The backup's name, as `hifi state backups` shows it.
        backup: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints its secret once (only its hash is kept).
    Create {
        /// Its name: recorded as the actor of everything done with it.
        name: String,
        /// What it may do: viewer, developer, approver, operator or admin.
        #[arg(long)]
        role: hifi_app::Role,
        /// How long it is valid (90d, 12h); for ever without.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Every token, with its role and when it expires (never a secret).
    List,
    /// Revoke a token: it authenticates no more.
    Revoke {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// How a release was composed, where it was verified, who approved it, where it runs.
    Show {
        /// The release id, or a unique prefix of 4 or more characters.
        id: String,
    },
    /// Mark a release as never to go live again, anywhere (where it is live,
    /// it stays until replaced).
    Reject {
        /// The release id, or a unique prefix of 4 or more characters.
        id: String,
        /// Why (shown with every refusal).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CardCommand {
    /// Register a card at the first stage of the workflow.
    Add {
        /// Card id, e.g. PAY-12.
        id: String,
        /// The git branch carrying the card's work.
        #[arg(long)]
        branch: String,
        /// A short title.
        #[arg(long, default_value = "")]
        title: String,
        /// A hotfix: also composed onto production's live release in the
        /// hotfix environment, until it is Done.
        #[arg(long)]
        hotfix: bool,
    },
    /// Move a card to a stage ("in-test" = "In Test").
    Move {
        /// Card id.
        id: String,
        /// Target stage.
        stage: String,
    },
    /// Remove a card.
    Rm {
        /// Card id.
        id: String,
    },
    /// Every card with its stage and the environments that include it.
    List,
}
