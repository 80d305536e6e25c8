//! The crate's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the proxy's control path. The request
/// path never returns these: it answers the client with a 4xx/5xx instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A routing table was refused; the message names the field.
    #[error("invalid routing table: {0}")]
    InvalidTable(String),
    /// A listener could not be opened.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener it is.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file or socket operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A persisted table could not be loaded on start.
    #[error("stored routing table {} cannot be loaded: {message}", path.display())]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Another live proxy already answers on the admin socket.
    #[error("admin socket {} is in use by another running proxy", path.display())]
    AdminInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The proxy's admin interface refused a request.
    #[error("proxy admin refused the request ({status}): {message}")]
    Admin {
        /// HTTP status of the answer.
        status: u16,
        /// The proxy's message.
        message: String,
    },
    /// Talking HTTP to the admin socket failed.
    #[error("proxy admin connection failed: {0}")]
    AdminHttp(#[from] hyper::Error),
    /// The admin answer could not be understood.
    #[error("proxy admin answered something unexpected: {0}")]
    AdminProtocol(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
