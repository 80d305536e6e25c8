//! How a failed command reaches the user: one clear message on stderr, a
//! hint saying what to do (from the error itself), and the exit code
//! DESIGN.md promises — 1 when hifi refused or the work failed, 2 for usage
//! and config errors. Config errors are drawn with the offending line of
//! `hifi.toml`.

use std::io::IsTerminal;

use hifi_app::{BadConfig, Error, ErrorKind};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

/// A command that did not succeed: an application error, said once.
#[derive(Debug)]
pub struct Failure(pub Error);

/// Result of a command.
pub type Result<T = (), E = Failure> = std::result::Result<T, E>;

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.into())
    }
}

impl Failure {
    /// A failure described in a sentence (exit 1).
    pub fn other(message: impl Into<String>) -> Failure {
        Failure(Error::Io(message.into()))
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self.0.kind() {
            ErrorKind::Usage | ErrorKind::Config => 2,
            _ => 1,
        }
    }

    /// The failure as a person reads it.
    pub fn render(&self) -> String {
        if let Error::Config(bad) = &self.0 {
            return render_config(bad);
        }
        let mut text = format!("error: {}\n", self.0);
        if let Some(hint) = self.0.hint() {
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
