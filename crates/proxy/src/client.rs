//! [`AdminClient`]: the typed client of the admin socket, used by the
//! controller and by tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::control::{DrainAnswer, DrainRequest, Inflight};
use crate::error::{Error, Result};
use crate::health::BackendReport;
use crate::metrics::{Stats, StatsQuery};
use crate::table::TableSpec;

/// Client of a proxy's admin socket. Each call opens a short connection, so
/// the client is cheap to clone and survives proxy restarts.
#[derive(Debug, Clone)]
pub struct AdminClient {
    path: PathBuf,
}

impl AdminClient {
    /// A client for the admin socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AdminClient { path: path.into() }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send one request; returns the status and the body whatever the status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes)> {
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|source| Error::Io {
                action: "connect to proxy admin socket",
                path: self.path.clone(),
                source,
            })?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            // The connection ends when the answer has been read.
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "hifi-proxy");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::AdminProtocol(format!("cannot build request for {path}: {e}")))?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        drop(send);
        driver.abort();
        Ok((status, bytes))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let (status, bytes) = self.request(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(admin_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::AdminProtocol(format!("{path}: {e}: {}", String::from_utf8_lossy(&bytes)))
        })
    }

    /// Replace the whole table of `table.env` in one step.
    pub async fn put_table(&self, table: &TableSpec) -> Result<()> {
        let body = serde_json::to_vec(table).map_err(|e| Error::AdminProtocol(e.to_string()))?;
        self.put_table_json(&table.env, body).await
    }

    /// Replace the table of `env` with raw JSON (validated by the proxy).
    pub async fn put_table_json(&self, env: &str, json: Vec<u8>) -> Result<()> {
        let _: serde_json::Value = self
            .call(Method::PUT, &format!("/tables/{env}"), Some(json))
            .await?;
        Ok(())
    }

    /// The table of `env`, if it has one.
    pub async fn get_table(&self, env: &str) -> Result<Option<TableSpec>> {
        match self
            .call(Method::GET, &format!("/tables/{env}"), None)
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(Error::Admin { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove the table of `env`; false if it had none.
    pub async fn remove_table(&self, env: &str) -> Result<bool> {
        match self
            .call::<serde_json::Value>(Method::DELETE, &format!("/tables/{env}"), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Admin { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Environments that have a table.
    pub async fn tables(&self) -> Result<Vec<String>> {
        self.call(Method::GET, "/tables", None).await
    }

    /// Windowed statistics of a slot.
    pub async fn stats(&self, q: &StatsQuery) -> Result<Stats> {
        let mut path = format!(
            "/stats?env={}&slot={}&since_ms={}",
            q.env, q.slot, q.since_ms
        );
        if let Some(s) = &q.service {
            path.push_str("&service=");
            path.push_str(s);
        }
        if let Some(ms) = q.slow_ms {
            path.push_str(&format!("&slow_ms={ms}"));
        }
        self.call(Method::GET, &path, None).await
    }

    /// In-flight work of a slot (of one service, or all).
    pub async fn inflight(&self, env: &str, slot: &str, service: Option<&str>) -> Result<Inflight> {
        let mut path = format!("/inflight?env={env}&slot={slot}");
        if let Some(s) = service {
            path.push_str("&service=");
            path.push_str(s);
        }
        self.call(Method::GET, &path, None).await
    }

    /// Close the slot's upgraded connections and streaming responses at a deadline.
    pub async fn drain(&self, req: &DrainRequest) -> Result<DrainAnswer> {
        let body = serde_json::to_vec(req).map_err(|e| Error::AdminProtocol(e.to_string()))?;
        self.call(Method::POST, "/drain", Some(body)).await
    }

    /// Health of every backend of `env`.
    pub async fn health(&self, env: &str) -> Result<Vec<BackendReport>> {
        self.call(Method::GET, &format!("/health?env={env}"), None)
            .await
    }

    /// Prometheus text exposition.
    pub async fn metrics_text(&self) -> Result<String> {
        let (status, bytes) = self.request(Method::GET, "/metrics", None).await?;
        if status != 200 {
            return Err(admin_error(status, &bytes));
        }
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::AdminProtocol(e.to_string()))
    }
}

fn admin_error(status: u16, bytes: &[u8]) -> Error {
    let message = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    Error::Admin { status, message }
}
