//! `--wait`: follows a deployment until it ends — a spinner with the latest
//! step on a terminal, one line per step otherwise — and exits 1 unless it
//! went live.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use hifi_app::Error;
use hifi_core::DeploymentState;
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::error::Result;
use crate::output;

/// How long the control plane may be gone before following gives up.
const GONE_FOR: Duration = Duration::from_secs(3);

/// Follows deployment `id` to its end.
pub fn follow(ctx: &Ctx, id: i64) -> Result {
    let mut hifi = ctx.hifi()?;
    let interactive = !ctx.out.json && std::io::stderr().is_terminal();
    let bar = interactive.then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let finish = |bar: &Option<ProgressBar>| {
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    };
    let mut seen = 0usize;
    let mut down_since: Option<Instant> = None;
    let deployment = loop {
        // State first, then events: the events read then include every
        // step up to that state, the last one too.
        let progress = hifi.progress(id)?;
        let (d, events) = (progress.deployment, progress.events);
        for e in &events[seen.min(events.len())..] {
            match &bar {
                Some(bar) => {
                    bar.println(format!("  {}", e.message));
                    bar.set_message(e.message.clone());
                }
                None if !ctx.out.json => eprintln!("  {}", e.message),
                None => {}
            }
        }
        seen = events.len();
        if !d.state.is_in_progress() {
            break d;
        }
        if !progress.control_plane_running {
            let since = *down_since.get_or_insert_with(Instant::now);
            if since.elapsed() > GONE_FOR {
                finish(&bar);
                return Err(Error::StoppedWhileFollowing {
                    deployment: id,
                    state: d.state,
                }
                .into());
            }
        } else {
            down_since = None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    finish(&bar);
    if ctx.out.json {
        output::json(&deployment);
    }
    match deployment.state {
        DeploymentState::Live => {
            if !ctx.out.json {
                println!("Deployment #{id} is live in {}.", deployment.env);
            }
            Ok(())
        }
        state => Err(Error::DeploymentDidNotGoLive {
            deployment: id,
            state,
            reason: deployment
                .reason
                .unwrap_or_else(|| "no reason recorded".into()),
        }
        .into()),
    }
}
