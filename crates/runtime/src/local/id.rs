//! The local runtime's instance identity: pid, start time, boot.

use std::fmt;

use crate::instance::InstanceId;

const PREFIX: &str = "local:";

/// Who an instance is on this machine: `local:<pid>:<start>:<boot id>`.
///
/// The pid alone is reused by the kernel; together with the start time (in
/// clock ticks since boot) and the boot id it names exactly one process, ever.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LocalId {
    pub pid: u32,
    pub start_time: u64,
    pub boot: String,
}

impl LocalId {
    pub fn parse(id: &InstanceId) -> Option<Self> {
        let mut parts = id.as_str().strip_prefix(PREFIX)?.splitn(3, ':');
        let pid: u32 = parts.next()?.parse().ok()?;
        // Signalling group 0 or 1 (or a negative number) would hit far more
        // than one instance; such an id can only be corrupt.
        if pid <= 1 || i32::try_from(pid).is_err() {
            return None;
        }
        Some(Self {
            pid,
            start_time: parts.next()?.parse().ok()?,
            boot: parts.next()?.to_owned(),
        })
    }

    pub fn to_id(&self) -> InstanceId {
        InstanceId::new(self.to_string())
    }

    /// The instance leads its own process group, so its pid is the group id.
    pub fn pgid(&self) -> i32 {
        // `parse` and `spawn` only accept pids that fit.
        i32::try_from(self.pid).unwrap_or(i32::MAX)
    }
}

impl fmt::Display for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}:{}:{}", self.pid, self.start_time, self.boot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_ids() {
        let id = LocalId {
            pid: 42,
            start_time: 123_456,
            boot: "0b5e2c8e-1111-2222-3333-444455556666".into(),
        };
        assert_eq!(LocalId::parse(&id.to_id()), Some(id));
        assert_eq!(LocalId::parse(&InstanceId::new("k8s:catalog-7d9f")), None);
        assert_eq!(LocalId::parse(&InstanceId::new("local:x:1:b")), None);
        assert_eq!(LocalId::parse(&InstanceId::new("local:1:1:b")), None);
        assert_eq!(
            LocalId::parse(&InstanceId::new("local:4294967295:1:b")),
            None
        );
    }
}
