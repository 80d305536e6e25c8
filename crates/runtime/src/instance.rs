//! What the controller asks a runtime to run, and what it keeps afterwards.
//!
//! [`InstanceSpec`] is rebuilt by the controller from config and release each
//! time; [`Instance`] is the small, serializable record that identifies one
//! running copy across controller restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use hifi_core::{Protocol, ReleaseId, RuntimeKind, Slot};
use serde::{Deserialize, Serialize};

/// What an instance runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A command run with `sh -c` in a directory: the built artifact of the
    /// service version (process runtimes).
    Command {
        /// The service's run command.
        command: String,
        /// The command's working directory.
        workdir: PathBuf,
        /// The artifact directory, when `workdir` is to be made afresh from
        /// it before the start: a copy made of hard links, so files the
        /// instance creates where it runs never land in the artifact.
        /// `None` runs in `workdir` as it is.
        artifact: Option<PathBuf>,
    },
    /// A container image, by its content id (container runtimes).
    Image {
        /// The image id, `sha256:…`: never a tag, so what runs is what was built.
        image: String,
        /// The service's run command, overriding the image's own if set.
        command: Option<String>,
    },
}

impl Program {
    /// How logs and errors show it.
    pub fn describe(&self) -> String {
        match self {
            Program::Command { command, .. } => format!("sh -c {command:?}"),
            Program::Image { image, .. } => format!("image {image}"),
        }
    }
}

/// Which port an instance listens on. The runtime chooses it (and gives it
/// to the instance as `PORT`): the controller only says what it would like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Any free port, chosen by the runtime.
    Any,
    /// This port if it is free, else any: an instance restarted after a
    /// crash keeps its address, so the routing table need not change.
    Prefer(u16),
    /// Exactly this port, whether or not another program holds it.
    Fixed(u16),
}

/// Everything needed to start one instance of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Environment name, e.g. `dev`.
    pub env: String,
    /// The slot it runs in.
    pub slot: Slot,
    /// Service name, e.g. `catalog`.
    pub service: String,
    /// Which of the slot's instances of the service this is, from 0.
    pub replica: u16,
    /// How many instances of the service the slot has (a runtime that
    /// scales a slot itself starts them all from replica 0's spec).
    pub replicas: u16,
    /// The release the instance belongs to.
    pub release: ReleaseId,
    /// The runtime that runs it.
    pub runtime: RuntimeKind,
    /// What it runs.
    pub program: Program,
    /// The port it listens on.
    pub port: Port,
    /// Host ports hifi keeps for its own listeners (the proxy's internal and
    /// preview listeners, other instances): a runtime that chooses host
    /// ports never chooses one of these.
    pub reserved_ports: BTreeSet<u16>,
    /// Already-resolved environment for the instance (`HIFI_URL_<PEER>`,
    /// `HIFI_ENV`, environment vars...). `PORT` is set after these, so it
    /// cannot be overridden by accident.
    pub vars: BTreeMap<String, String>,
    /// The names among `vars` whose values came from hifi's own
    /// environment (`${NAME}` in `[environment.vars]`): secrets, which a
    /// runtime that writes objects down (Kubernetes) keeps in a Secret,
    /// never in plain sight.
    pub secret_vars: BTreeSet<String>,
    /// File that receives the instance's stdout and stderr (appended; parent
    /// directories are created).
    pub log: PathBuf,
    /// Path that must answer 2xx before the instance takes traffic, e.g.
    /// `/healthz` (for gRPC, a method: `/grpc.health.v1.Health/Check`).
    pub health_path: String,
    /// What the instance speaks, and so how its health path is probed
    /// (see [`crate::probe::get_status`]).
    pub protocol: Protocol,
}

impl InstanceSpec {
    /// How errors name this instance: `service catalog (dev/green)`.
    pub fn describe(&self) -> String {
        describe(&self.service, &self.env, self.slot, self.replica)
    }
}

/// Opaque, runtime-specific identity of one started instance.
///
/// Stored as a plain string so the controller can persist it without knowing
/// what is inside. The local runtime writes
/// `local:<pid>:<start time in clock ticks since boot>:<boot id>`, which
/// stays unambiguous when the pid is reused or the machine reboots.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// Wraps a runtime-specific identity string.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identity string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One started instance, as the controller records it.
///
/// Serializable so it survives a controller crash: a runtime re-adopts the
/// instance from this record alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Runtime-specific identity.
    pub id: InstanceId,
    /// Where the instance serves HTTP: the runtime says, the controller
    /// never assumes.
    pub addr: SocketAddr,
    /// Environment it was started for.
    pub env: String,
    /// Slot it was started for.
    pub slot: Slot,
    /// Service it runs.
    pub service: String,
    /// Which of the slot's instances of the service it is (records written
    /// before replicas are replica 0).
    #[serde(default)]
    pub replica: u16,
    /// Release it belongs to.
    pub release: ReleaseId,
    /// The runtime that started it (records written before runtimes were
    /// chosen per environment are local).
    #[serde(default)]
    pub runtime: RuntimeKind,
}

impl Instance {
    /// How errors name this instance: `service catalog (dev/green)`.
    pub fn describe(&self) -> String {
        describe(&self.service, &self.env, self.slot, self.replica)
    }
}

/// `service catalog (dev/green)`; replicas after the first are numbered
/// from 1 as people count: `service catalog (dev/green #2)`.
fn describe(service: &str, env: &str, slot: Slot, replica: u16) -> String {
    if replica == 0 {
        format!("service {service} ({env}/{slot})")
    } else {
        format!("service {service} ({env}/{slot} #{})", replica + 1)
    }
}

/// Whether an instance still runs, as far as the runtime can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InstanceStatus {
    /// The instance's process (or pod) is alive.
    Running,
    /// It is gone. `code` or `signal` are known only when this runtime
    /// process saw it exit; for re-adopted instances both may be `None`.
    Exited {
        /// Exit code, if it exited normally and the code is known.
        code: Option<i32>,
        /// Terminating signal, if it was killed and the signal is known.
        signal: Option<i32>,
    },
    /// The runtime cannot tell (e.g. the id belongs to another runtime, or
    /// the process table could not be read).
    Unknown,
}

impl InstanceStatus {
    /// True for [`InstanceStatus::Running`].
    pub fn is_running(self) -> bool {
        self == Self::Running
    }

    /// True for [`InstanceStatus::Exited`].
    pub fn is_exited(self) -> bool {
        matches!(self, Self::Exited { .. })
    }
}

/// Reads as a predicate: "service catalog (dev/green) {status}".
impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Running => f.write_str("is running"),
            Self::Exited {
                code: Some(code), ..
            } => write!(f, "exited with status {code}"),
            Self::Exited {
                signal: Some(signal),
                ..
            } => match signal_name(signal) {
                Some(name) => write!(f, "was killed by signal {signal} ({name})"),
                None => write!(f, "was killed by signal {signal}"),
            },
            Self::Exited { .. } => f.write_str("exited"),
            Self::Unknown => f.write_str("is in an unknown state"),
        }
    }
}

/// Names for the signals a user is likely to meet; the number alone is
/// printed for the rest.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}
