//! Running `git` so that nothing a user typed can change what git does.
//!
//! Every invocation is `git -C <root> --no-pager [-c k=v]... <subcommand>` with
//! a fixed locale (so stderr can be matched), no terminal prompts, and no
//! inherited `GIT_DIR`-style variables that would silently point git at another
//! repository or index (they are set when hifi runs from a git hook). Callers
//! put `--end-of-options` before any argument derived from user input; names
//! are also validated before they get here, so the two defenses back each
//! other up.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Error, Result};

/// Variables that redirect git away from the repository named with `-C`.
const REDIRECTING_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
];

/// One git invocation being prepared.
pub(crate) struct GitCommand {
    cmd: Command,
    config: Vec<OsString>,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
}

/// What a finished git process produced.
pub(crate) struct Output {
    /// Exit code, `None` when killed by a signal.
    pub(crate) status: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
    /// The arguments, for error messages.
    pub(crate) args: String,
}

impl GitCommand {
    /// A git command run against the repository (or directory) at `dir`.
    pub(crate) fn new(dir: &Path) -> GitCommand {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(dir).arg("--no-pager");
        for var in REDIRECTING_VARS {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat");
        GitCommand {
            cmd,
            config: Vec::new(),
            args: Vec::new(),
            stdin: None,
        }
    }

    /// Overrides one configuration value for this invocation only (`-c key=value`).
    pub(crate) fn config(mut self, key_value: &str) -> GitCommand {
        self.config.push("-c".into());
        self.config.push(key_value.into());
        self
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> GitCommand {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> GitCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> GitCommand {
        self.cmd.env(key, value);
        self
    }

    /// Feeds `input` to git's stdin (otherwise stdin is closed).
    pub(crate) fn stdin(mut self, input: Vec<u8>) -> GitCommand {
        self.stdin = Some(input);
        self
    }

    /// Runs git and returns its output whatever the exit status.
    pub(crate) fn output(self) -> Result<Output> {
        let GitCommand {
            mut cmd,
            config,
            args,
            stdin,
        } = self;
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        cmd.args(&config)
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|source| Error::GitUnavailable { source })?;
        let (stdout, stderr) = std::thread::scope(|scope| -> io::Result<_> {
            // stdin is written from its own thread and stderr drained from
            // another: git may fill one pipe while we block on the other.
            let mut child_stdin = child.stdin.take();
            let writer = scope.spawn(move || match (child_stdin.as_mut(), stdin) {
                (Some(pipe), Some(input)) => pipe.write_all(&input),
                _ => Ok(()),
            });
            let mut child_stderr = child.stderr.take();
            let err_reader = scope.spawn(move || {
                let mut buf = Vec::new();
                if let Some(pipe) = child_stderr.as_mut() {
                    pipe.read_to_end(&mut buf)?;
                }
                io::Result::Ok(buf)
            });
            let mut stdout = Vec::new();
            if let Some(pipe) = child.stdout.as_mut() {
                pipe.read_to_end(&mut stdout)?;
            }
            let stderr = err_reader.join().expect("stderr reader panicked")?;
            // A broken pipe only means git stopped reading early; its exit
            // status and stderr tell the real story.
            match writer.join().expect("stdin writer panicked") {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                _ => {}
            }
            Ok((stdout, stderr))
        })
        .map_err(|source| Error::GitUnavailable { source })?;
        let status = child
            .wait()
            .map_err(|source| Error::GitUnavailable { source })?;

        tracing::debug!(
            args = %shown,
            status = status.code(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "git"
        );
        Ok(Output {
            status: status.code(),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
            args: shown,
        })
    }

    /// Runs git and returns its stdout, or [`Error::Git`] unless it exited 0.
    pub(crate) fn run(self) -> Result<Output> {
        let output = self.output()?;
        if output.status == Some(0) {
            Ok(output)
        } else {
            Err(output.into_error())
        }
    }
}

impl Output {
    /// The failure described by this output.
    pub(crate) fn into_error(self) -> Error {
        Error::Git {
            args: self.args,
            status: self.status,
            stderr: self.stderr,
        }
    }

    /// An error for output this crate could not parse.
    pub(crate) fn unexpected(&self, detail: impl Into<String>) -> Error {
        Error::UnexpectedOutput {
            args: self.args.clone(),
            detail: detail.into(),
        }
    }

    /// Stdout split into lines (without terminators).
    pub(crate) fn lines(&self) -> impl Iterator<Item = &[u8]> {
        split_records(&self.stdout, b'\n')
    }

    /// Stdout split into NUL-terminated records (for `-z` output).
    pub(crate) fn records(&self) -> impl Iterator<Item = &[u8]> {
        split_records(&self.stdout, b'\0')
    }
}

/// Splits terminated records; a missing final terminator is tolerated.
fn split_records(bytes: &[u8], terminator: u8) -> impl Iterator<Item = &[u8]> {
    let bytes = bytes.strip_suffix(&[terminator]).unwrap_or(bytes);
    let empty = bytes.is_empty();
    bytes
        .split(move |b| *b == terminator)
        .filter(move |_| !empty)
}
