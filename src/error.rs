//! How a failed command reaches the user: one clear message on stderr, a
//! hint saying what to do (from the error itself), and the exit code
//! DESIGN.md promises — 1 when hifi refused or the work failed, 2 for usage
//! and config errors. Config errors are drawn with the offending line of
//! `hifi.toml`.

use std::io::IsTerminal;

use hifi_app::{BadConfig, Error, ErrorKind};
use hifi_server::client::ClientError;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

/// A command that did not succeed, said once: an application error here,
/// or what a team server answered (or why it could not be reached).
#[derive(Debug)]
pub enum Failure {
    /// The application layer refused or failed.
    App(Error),
    /// The team server refused or failed, or was out of reach.
    Remote(ClientError),
    /// The command line cannot be acted on (exit 2).
    Usage(String),
}

/// Result of a command.
pub type Result<T = (), E = Failure> = std::result::Result<T, E>;

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::App(e.into())
    }
}

/// Codes a server answers when its own project cannot be read: the same
/// exit code as the local command would give.
const USAGE_CODES: [&str; 4] = [
    "invalid_config",
    "no_config",
    "unreadable_config",
    "not_a_repository",
];

impl Failure {
    /// A failure described in a sentence (exit 1).
    pub fn other(message: impl Into<String>) -> Failure {
        Failure::App(Error::Io(message.into()))
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::App(e) => match e.kind() {
                ErrorKind::Usage | ErrorKind::Config => 2,
                _ => 1,
            },
            Failure::Remote(ClientError::Problem(p)) if USAGE_CODES.contains(&p.code.as_str()) => 2,
            Failure::Remote(_) => 1,
            Failure::Usage(_) => 2,
        }
    }

    /// The failure as a person reads it.
    pub fn render(&self) -> String {
        let (message, hint) = match self {
            Failure::App(Error::Config(bad)) => return render_config(bad),
            Failure::App(e) => (e.to_string(), e.hint()),
            Failure::Remote(ClientError::Problem(p)) => (p.detail.clone(), p.hint.clone()),
            Failure::Remote(e) => (e.to_string(), None),
            Failure::Usage(message) => (message.clone(), None),
        };
        let mut text = format!("error: {message}\n");
        if let Some(hint) = hint {
            text.push_str(&format!("  hint: {hint}\n"));
        }
        text
    }
}

fn render_config(bad: &BadConfig) -> String {
    let BadConfig {
        path,
        source,
        error,
    } = bad;
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
