//! What the controller asks a runtime to run, and what it keeps afterwards.
//!
//! [`InstanceSpec`] is rebuilt by the controller from config and release each
//! time; [`Instance`] is the small, serializable record that identifies one
//! running copy across controller restarts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything needed to start one instance of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Environment name, e.g. `dev`.
    pub env: String,
    /// Slot name, e.g. `green`.
    pub slot: String,
    /// Service name, e.g. `catalog`.
    pub service: String,
    /// Release id the instance belongs to.
    pub release: String,
    /// The service's run command, run with `sh -c`.
    pub command: String,
    /// The built artifact directory of this service version; the working
    /// directory of the command.
    pub workdir: PathBuf,
    /// Port the instance must listen on (given to it as `PORT`).
    pub port: u16,
    /// Already-resolved environment for the instance (`HIFI_URL_<PEER>`,
    /// `HIFI_ENV`, environment vars...). `PORT` is set after these, so it
    /// cannot be overridden by accident.
    pub vars: BTreeMap<String, String>,
    /// File that receives the instance's stdout and stderr (appended; parent
    /// directories are created).
    pub log: PathBuf,
    /// Path that must answer 2xx before the instance takes traffic, e.g.
    /// `/healthz`.
    pub health_path: String,
}

impl InstanceSpec {
    /// How errors name this instance: `service catalog (dev/green)`.
    pub fn describe(&self) -> String {
        describe(&self.service, &self.env, &self.slot)
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
    /// Where the instance serves HTTP.
    pub addr: SocketAddr,
    /// Environment it was started for.
    pub env: String,
    /// Slot it was started for.
    pub slot: String,
    /// Service it runs.
    pub service: String,
    /// Release it belongs to.
    pub release: String,
}

impl Instance {
    /// How errors name this instance: `service catalog (dev/green)`.
    pub fn describe(&self) -> String {
        describe(&self.service, &self.env, &self.slot)
    }
}

fn describe(service: &str, env: &str, slot: &str) -> String {
    format!("service {service} ({env}/{slot})")
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
