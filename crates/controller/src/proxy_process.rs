//! The proxy as a process of its own. The controller starts it through the
//! runtime (so it lives in its own process group and outlives a killed
//! control plane), records it in `.hifi/proxy.json`, re-adopts it on the
//! next start, and restarts it if it dies — the proxy reloads its persisted
//! tables by itself, so traffic resumes with exactly what it served.

use std::path::PathBuf;
use std::time::Duration;

use hifi_core::Layout;
use hifi_proxy::AdminClient;
use hifi_runtime::{InstanceId, LocalRuntime, ProcessSpec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What `.hifi/proxy.json` keeps of the proxy process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyRecord {
    /// Its identity in the local runtime.
    pub id: InstanceId,
}

/// How the proxy is named in logs and errors.
const NAME: &str = "the proxy";

/// How to start the proxy.
#[derive(Debug, Clone)]
pub struct ProxyLaunch {
    /// Whether the controller starts and supervises the proxy. When false,
    /// something else runs it (a service manager, or a test that runs it in
    /// process) and the controller only talks to its admin socket.
    pub managed: bool,
    /// The command line (run with `sh -c`), e.g. `'/usr/bin/hifi' proxy --state-dir ...`.
    pub command: String,
    /// Working directory.
    pub workdir: PathBuf,
    /// The admin socket the command makes the proxy listen on.
    pub admin: PathBuf,
    /// Where the proxy's record is kept for re-adoption.
    pub record: PathBuf,
    /// Its log.
    pub log: PathBuf,
}

/// Quotes a string for `sh`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl ProxyLaunch {
    /// The proxy of the project laid out by `layout`, started by the
    /// controller with `command` (which makes it listen on
    /// [`Layout::proxy_socket`] and keep its tables in
    /// [`Layout::proxy_tables`]).
    pub fn managed(layout: &Layout, command: String) -> ProxyLaunch {
        ProxyLaunch {
            managed: true,
            command,
            workdir: layout.root().to_path_buf(),
            admin: layout.proxy_socket(),
            record: layout.proxy_record(),
            log: layout.proxy_log(),
        }
    }

    /// The proxy of the project laid out by `layout`, run by someone else
    /// (a service manager, a test): the controller only talks to it.
    pub fn external(layout: &Layout) -> ProxyLaunch {
        ProxyLaunch {
            managed: false,
            command: String::new(),
            ..ProxyLaunch::managed(layout, String::new())
        }
    }

    fn spec(&self) -> ProcessSpec {
        ProcessSpec {
            name: NAME.into(),
            command: self.command.clone(),
            workdir: self.workdir.clone(),
            vars: Default::default(),
            log: self.log.clone(),
            banner: format!(
                "the proxy (hifi {}): sh -c {:?}",
                env!("CARGO_PKG_VERSION"),
                self.command
            ),
        }
    }

    /// The recorded proxy process, if any.
    pub fn recorded(&self) -> Option<ProxyRecord> {
        let text = std::fs::read_to_string(&self.record).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save(&self, record: &ProxyRecord) -> Result<()> {
        let text = serde_json::to_string(record).map_err(|e| Error::Other(e.to_string()))?;
        let tmp = self.record.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &self.record))
            .map_err(|e| Error::ProxyStart(format!("cannot write {}: {e}", self.record.display())))
    }

    /// Adopts the running proxy, or starts one. Returns whether it started one.
    pub async fn ensure(&self, runtime: &LocalRuntime) -> Result<bool> {
        let client = AdminClient::new(&self.admin);
        if !self.managed {
            return if wait_ready(&client, Duration::from_secs(10)).await {
                Ok(false)
            } else {
                Err(Error::ProxyStart(format!(
                    "nothing answers on {}",
                    self.admin.display()
                )))
            };
        }
        if let Some(record) = self.recorded() {
            if runtime.process_status(&record.id).is_running()
                && wait_ready(&client, Duration::from_secs(5)).await
            {
                return Ok(false);
            }
            // Recorded but gone or unresponsive: make sure it is gone.
            let _ = runtime
                .stop_process(NAME, &record.id, Duration::from_secs(2))
                .await;
        } else if wait_ready(&client, Duration::from_millis(200)).await {
            // A proxy answers but was never recorded (hifi died between
            // starting it and writing the record): use it rather than start
            // a second one beside it, which could not bind any port.
            tracing::warn!(
                "adopting the proxy answering on {} although it was not recorded; `hifi down` cannot stop it",
                self.admin.display()
            );
            return Ok(false);
        }
        let _ = std::fs::remove_file(&self.admin);
        let record = ProxyRecord {
            id: runtime.spawn(&self.spec()).await?,
        };
        self.save(&record)?;
        if wait_ready(&client, Duration::from_secs(10)).await {
            Ok(true)
        } else {
            let _ = runtime
                .stop_process(NAME, &record.id, Duration::from_secs(2))
                .await;
            let _ = std::fs::remove_file(&self.record);
            Err(Error::ProxyStart(format!(
                "it did not answer on {} within 10 s; see {}",
                self.admin.display(),
                self.log.display()
            )))
        }
    }

    /// Whether the recorded proxy still runs.
    pub fn alive(&self, runtime: &LocalRuntime) -> bool {
        !self.managed
            || self
                .recorded()
                .is_some_and(|r| runtime.process_status(&r.id).is_running())
    }

    /// Stops the proxy (its listeners close, so every port is freed).
    pub async fn stop(&self, runtime: &LocalRuntime) -> Result<bool> {
        if !self.managed {
            return Ok(false);
        }
        let Some(record) = self.recorded() else {
            return Ok(false);
        };
        let was_running = runtime.process_status(&record.id).is_running();
        runtime
            .stop_process(NAME, &record.id, Duration::from_secs(5))
            .await?;
        let _ = std::fs::remove_file(&self.record);
        let _ = std::fs::remove_file(&self.admin);
        Ok(was_running)
    }
}

async fn wait_ready(client: &AdminClient, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if client.tables().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}
