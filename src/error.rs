//! How a failed command reaches the user: one clear message on stderr, an
//! optional hint saying what to do, and the exit code DESIGN.md promises —
//! 1 when hifi refused or the work failed, 2 for usage and config errors.
//! Config errors are drawn with the offending line of `hifi.toml`.

use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;

use hifi_core::ConfigError;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

/// A command that did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Refused or failed: exit 1.
    Refused {
        /// What was wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// Usage error: exit 2.
    Usage(String),
    /// `hifi.toml` is wrong: exit 2.
    Config(Box<BadConfig>),
}

/// A config file and what is wrong with it.
#[derive(Debug)]
pub struct BadConfig {
    /// The file.
    pub path: PathBuf,
    /// Its text, to draw the offending line.
    pub source: String,
    /// What is wrong.
    pub error: ConfigError,
}

/// Result of a command.
pub type Result<T = (), E = Failure> = std::result::Result<T, E>;

impl Failure {
    /// A refusal with a message.
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure::Refused {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do.
    pub fn hint(self, hint: impl Into<String>) -> Failure {
        match self {
            Failure::Refused { message, .. } => Failure::Refused {
                message,
                hint: Some(hint.into()),
            },
            other => other,
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Refused { .. } => 1,
            Failure::Usage(_) | Failure::Config(_) => 2,
        }
    }

    /// Writes the failure for a person.
    pub fn render(&self) -> String {
        match self {
            Failure::Refused { message, hint } => {
                let mut text = format!("error: {message}\n");
                if let Some(hint) = hint {
                    text.push_str(&format!("  hint: {hint}\n"));
                }
                text
            }
            Failure::Usage(message) => format!("error: {message}\n"),
            Failure::Config(bad) => {
                let BadConfig {
                    path,
                    source,
                    error,
                } = bad.as_ref();
                let mut headline = path.display().to_string();
                if let Some(line) = error.line {
                    headline.push_str(&format!(":{line}"));
                }
                if !error.key.is_empty() {
                    headline.push_str(&format!(": {}", error.key));
                }
                headline.push_str(&format!(": {}", error.message));
                let diagnostic = ConfigDiagnostic {
                    headline,
                    src: NamedSource::new(path.display().to_string(), source.clone()),
                    span: error.span.clone().map(SourceSpan::from),
                };
                let theme = if std::io::stderr().is_terminal() {
                    GraphicalTheme::unicode()
                } else {
                    GraphicalTheme::unicode_nocolor()
                };
                let mut out = String::new();
                if GraphicalReportHandler::new_themed(theme)
                    .render_report(&mut out, &diagnostic)
                    .is_err()
                {
                    out = format!("error: {}\n", diagnostic.headline);
                }
                out
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{headline}")]
#[diagnostic(help("fix hifi.toml and run the command again; nothing was changed"))]
struct ConfigDiagnostic {
    headline: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: Option<SourceSpan>,
}

/// Turns any library error into a refusal with its full message.
macro_rules! refuse_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Failure {
            fn from(e: $ty) -> Failure {
                Failure::refused(e.to_string())
            }
        }
    )*};
}

refuse_from!(
    hifi_store::Error,
    hifi_core::fidelity::Refusal,
    std::io::Error
);

impl From<hifi_git::Error> for Failure {
    fn from(e: hifi_git::Error) -> Failure {
        match e {
            // Running hifi outside a repository is a usage error, like a
            // missing hifi.toml.
            hifi_git::Error::NotARepository { .. } | hifi_git::Error::NoWorkTree { .. } => {
                Failure::Usage(e.to_string())
            }
            e => Failure::refused(e.to_string()),
        }
    }
}
