//! The controller's error type. Most failures end a deployment with a
//! recorded reason rather than bubbling up; what reaches [`Error`] is what
//! the controller itself could not do (store, proxy, config).

use std::path::PathBuf;

/// What the controller could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] hifi_store::Error),
    /// The proxy's admin interface failed or refused a table.
    #[error("the proxy refused or failed: {0}")]
    Proxy(#[from] hifi_proxy::Error),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] hifi_runtime::Error),
    /// Git failed.
    #[error(transparent)]
    Git(#[from] hifi_git::Error),
    /// `hifi.toml` could not be read.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The proxy process could not be started or reached.
    #[error("the proxy could not be started: {0}")]
    ProxyStart(String),
    /// Anything else, in a sentence.
    #[error("{0}")]
    Other(String),
}

/// Result with the controller's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
