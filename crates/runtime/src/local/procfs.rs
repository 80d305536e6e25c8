//! Reading the process table and socket table from `/proc` (Linux).
//!
//! This is how the local runtime recognises an instance it did not spawn
//! itself: a pid alone can be reused, a pid plus its start time (and the boot
//! it happened in) cannot.

use std::fs;
use std::io;
use std::path::Path;

use rustix::io::Errno;

/// The fields of `/proc/<pid>/stat` the runtime needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `Z`, ...
    pub state: char,
    /// Field 5: process group id.
    pub pgrp: i32,
    /// Field 22: start time in clock ticks since boot.
    pub start_time: u64,
}

impl Stat {
    /// A zombie (or dead) process has finished; it only waits to be reaped.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The stat of `pid`, or `None` when there is no such process.
pub(crate) fn stat(pid: u32) -> io::Result<Option<Stat>> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => parse_stat(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected format of /proc/{pid}/stat"),
            )
        }),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A process that is exiting right now can answer ESRCH instead of ENOENT.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(Errno::SRCH.raw_os_error())
}

fn parse_stat(text: &str) -> Option<Stat> {
    // Field 2 is the command name in parentheses and may itself contain
    // spaces and parentheses, so split after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// This boot's id; empty when the kernel does not expose one.
pub(crate) fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// Whether a process whose `stat` says zombie still has live threads. The
/// state in `/proc/<pid>/stat` is the main thread's: a multi-threaded
/// service whose main thread returned shows `Z` while its other threads
/// still serve and hold its sockets.
pub(crate) fn has_live_threads(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(|t| t.ok()).any(|t| {
        let state = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let after = state
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start())
            .unwrap_or("");
        !matches!(
            after.chars().next(),
            None | Some('Z') | Some('X') | Some('x')
        )
    })
}

/// Pids of the processes in group `pgid` that have not finished. Zombies are
/// left out: they are dead, and when init does not reap orphans they would
/// otherwise look alive forever — unless some of their threads still run.
pub(crate) fn live_group_members(pgid: i32) -> io::Result<Vec<u32>> {
    let mut members = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // Processes come and go during the scan; a vanished one is no member.
        if let Ok(Some(stat)) = stat(pid)
            && stat.pgrp == pgid
            && (!stat.is_dead() || has_live_threads(pid))
        {
            members.push(pid);
        }
    }
    Ok(members)
}

/// Inodes of the TCP sockets listening on `port` (any address, v4 or v6).
pub(crate) fn listening_inodes(port: u16) -> io::Result<Vec<u64>> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match fs::read_to_string(table) {
            Ok(text) => inodes.extend(parse_listeners(&text, port)),
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(inodes)
}

fn parse_listeners(table: &str, port: u16) -> impl Iterator<Item = u64> + '_ {
    const LISTEN: &str = "0A";
    table.lines().skip(1).filter_map(move |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
        (local_port == port && *fields.get(3)? == LISTEN).then(|| fields.get(9)?.parse().ok())?
    })
}

/// Whether `pid` has one of the socket `inodes` open.
pub(crate) fn holds_socket(pid: u32, inodes: &[u64]) -> io::Result<bool> {
    for entry in fs::read_dir(Path::new("/proc").join(pid.to_string()).join("fd"))? {
        // An fd closed during the scan is simply not a match.
        let Ok(target) = fs::read_link(entry?.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if inode.is_some_and(|inode| inodes.contains(&inode)) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let text = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 4242);
        assert_eq!(stat.start_time, 987654);
    }

    #[test]
    fn finds_only_listening_sockets_on_the_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1 0 100 0 0 10 0";
        assert_eq!(parse_listeners(table, 8080).collect::<Vec<_>>(), [111]);
        assert_eq!(parse_listeners(table, 8081).collect::<Vec<_>>(), [333]);
    }
}
