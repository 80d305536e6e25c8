//! The proxy as a process of its own. The controller starts it through the
//! runtime (so it lives in its own process group and outlives a killed
//! control plane), records it in `.hifi/proxy.json`, re-adopts it on the
//! next start, and restarts it if it dies — the proxy reloads its persisted
//! tables by itself, so traffic resumes with exactly what it served.

use std::path::PathBuf;
use std::time::Duration;

use hifi_proxy::AdminClient;
use hifi_runtime::{Instance, InstanceSpec, Runtime};

use crate::error::{Error, Result};

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
    fn spec(&self) -> InstanceSpec {
        InstanceSpec {
            env: "hifi".into(),
            slot: "system".into(),
            service: "proxy".into(),
            release: env!("CARGO_PKG_VERSION").into(),
            command: self.command.clone(),
            workdir: self.workdir.clone(),
            port: 0,
            vars: Default::default(),
            log: self.log.clone(),
            health_path: "/".into(),
        }
    }

    /// The recorded proxy instance, if any.
    pub fn recorded(&self) -> Option<Instance> {
        let text = std::fs::read_to_string(&self.record).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save(&self, instance: &Instance) -> Result<()> {
        let text = serde_json::to_string(instance).map_err(|e| Error::Other(e.to_string()))?;
        let tmp = self.record.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &self.record))
            .map_err(|e| Error::ProxyStart(format!("cannot write {}: {e}", self.record.display())))
    }

    /// Adopts the running proxy, or starts one. Returns whether it started one.
    pub async fn ensure<R: Runtime>(&self, runtime: &R) -> Result<bool> {
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
        if let Some(instance) = self.recorded() {
            if runtime.status(&instance).is_running()
                && wait_ready(&client, Duration::from_secs(5)).await
            {
                return Ok(false);
            }
            // Recorded but gone or unresponsive: make sure it is gone.
            let _ = runtime.stop(&instance, Duration::from_secs(2)).await;
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
        let instance = runtime.start(&self.spec()).await?;
        self.save(&instance)?;
        if wait_ready(&client, Duration::from_secs(10)).await {
            Ok(true)
        } else {
            let _ = runtime.stop(&instance, Duration::from_secs(2)).await;
            let _ = std::fs::remove_file(&self.record);
            Err(Error::ProxyStart(format!(
                "it did not answer on {} within 10 s; see {}",
                self.admin.display(),
                self.log.display()
            )))
        }
    }

    /// Whether the recorded proxy still runs.
    pub fn alive<R: Runtime>(&self, runtime: &R) -> bool {
        !self.managed
            || self
                .recorded()
                .is_some_and(|i| runtime.status(&i).is_running())
    }

    /// Stops the proxy (its listeners close, so every port is freed).
    pub async fn stop<R: Runtime>(&self, runtime: &R) -> Result<bool> {
        if !self.managed {
            return Ok(false);
        }
        let Some(instance) = self.recorded() else {
            return Ok(false);
        };
        let was_running = runtime.status(&instance).is_running();
        runtime.stop(&instance, Duration::from_secs(5)).await?;
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
