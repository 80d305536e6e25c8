//! A small HTTP/1.1 client: one request per connection, http or https
//! (rustls, ring, Mozilla's roots plus any extra CA given), a deadline on
//! the whole exchange and a cap on the answer's size. Enough for the remote
//! CLI (a few requests a command) and for webhooks (one POST an event),
//! without a general-purpose client's dependencies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a request got no answer. Messages never include the URL's path or
/// query, where webhook secrets live.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("{0}")]
    BadUrl(String),
    /// Connecting failed.
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// `host:port`.
        host: String,
        /// Why.
        reason: String,
    },
    /// The exchange took too long.
    #[error("no answer from {host} within {secs} s")]
    Timeout {
        /// `host:port`.
        host: String,
        /// The deadline.
        secs: u64,
    },
    /// The connection broke, or the answer was not HTTP or too large.
    #[error("{host}: {reason}")]
    Exchange {
        /// `host:port`.
        host: String,
        /// Why.
        reason: String,
    },
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// Where requests go and how.
#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
    timeout: Duration,
    max_answer: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with a deadline per exchange, trusting Mozilla's roots and
    /// the PEM certificates in `extra_ca` (for a server with its own CA).
    pub fn new(
        timeout: Duration,
        extra_ca: Option<&std::path::Path>,
    ) -> Result<HttpClient, HttpError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let bad = |e: &dyn std::fmt::Display| {
                HttpError::BadUrl(format!(
                    "cannot read the CA certificates {}: {e}",
                    path.display()
                ))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::BadUrl(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(HttpClient {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
            max_answer: 64 * 1024 * 1024,
        })
    }

    /// The same client, keeping at most `bytes` of an answer's body.
    pub fn max_answer(mut self, bytes: usize) -> HttpClient {
        self.max_answer = bytes;
        self
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, HttpError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| HttpError::BadUrl("not a URL".into()))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(HttpError::BadUrl(
                    "only http:// and https:// URLs are served".into(),
                ));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| HttpError::BadUrl("the URL names no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let at = format!("{host}:{port}");
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &authority)
            .header(
                header::USER_AGENT,
                concat!("hifi/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|_| {
                HttpError::BadUrl(format!("header {name} holds characters HTTP cannot carry"))
            })?;
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| HttpError::BadUrl(e.to_string()))?;
        let exchange = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| HttpError::Connect {
                    host: at.clone(),
                    reason: e.to_string(),
                })?;
            let _ = tcp.set_nodelay(true);
            if https {
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| HttpError::BadUrl(format!("{host} is not a server name")))?;
                let tls = self
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| HttpError::Connect {
                        host: at.clone(),
                        reason: e.to_string(),
                    })?;
                self.exchange(TokioIo::new(tls), request, &at).await
            } else {
                self.exchange(TokioIo::new(tcp), request, &at).await
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                host: at.clone(),
                secs: self.timeout.as_secs().max(1),
            })?
    }

    async fn exchange<I>(
        &self,
        io: I,
        request: Request<Full<Bytes>>,
        at: &str,
    ) -> Result<Answer, HttpError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let broken = |e: &dyn std::fmt::Display| HttpError::Exchange {
            host: at.to_string(),
            reason: e.to_string(),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| broken(&e))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let response = sender.send_request(request).await.map_err(|e| broken(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_answer)
            .collect()
            .await
            .map_err(|e| broken(&e))?
            .to_bytes();
        driver.abort();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
