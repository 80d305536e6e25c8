//! The smoke check: the environment's `smoke` command, run against the
//! candidate before any user is switched to it. `HIFI_CANDIDATE_URL` is the
//! proxy's preview listener, which routes like the public one but sends
//! every request to the candidate; `HIFI_URL` is the public listener.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Runs `command`; `Err` carries a reason with the end of its output.
pub async fn run(
    command: &str,
    url: &str,
    candidate_url: &str,
    preview_token: Option<&str>,
    log: &Path,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("HIFI_URL", url)
        .env("HIFI_CANDIDATE_URL", candidate_url)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true);
    if let Some(token) = preview_token {
        cmd.env("HIFI_PREVIEW_TOKEN", token);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start the smoke command `{command}`: {e}"))?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| e.to_string())?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "the smoke command `{command}` did not finish within {} s; log: {}",
                timeout.as_secs(),
                log.display()
            ));
        }
    };
    if status.success() {
        return Ok(());
    }
    let tail = std::fs::read_to_string(log)
        .map(|t| {
            t.lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default();
    Err(format!(
        "the smoke command `{command}` failed ({status}): {tail} (log: {})",
        log.display()
    ))
}
