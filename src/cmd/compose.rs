//! `hifi compose ENV`: compose an environment and print its release id.

use serde::Serialize;

use super::Output;
use crate::compose::{Outcome, compose, env_branch};
use crate::error::Result;
use crate::output;
use crate::project::Project;
use hifi_artifacts::Built;

#[derive(Serialize)]
struct Report<'a> {
    env: &'a str,
    branch: String,
    outcome: &'static str,
    release: &'a hifi_core::Release,
    built: Vec<&'a str>,
}

/// Runs `hifi compose ENV`.
pub fn run(project: &mut Project, env: &str, out: Output) -> Result {
    let composed = compose(project, env, &mut |step| {
        if !out.json {
            eprintln!("  {step}");
        }
    })?;
    let release = &composed.release;
    let outcome = match composed.outcome {
        Outcome::UpToDate => "up-to-date",
        Outcome::NewRelease => "new-release",
        Outcome::KnownRelease => "known-release",
    };
    let built: Vec<&str> = composed
        .builds
        .iter()
        .filter(|(_, b)| matches!(b, Built::Built(_)))
        .map(|(s, _)| s.as_str())
        .collect();
    if out.json {
        output::json(&Report {
            env,
            branch: env_branch(env),
            outcome,
            release,
            built,
        });
        return Ok(());
    }
    let what = match composed.outcome {
        Outcome::UpToDate => format!("{env} is up to date"),
        Outcome::NewRelease => format!("composed {env}: new release"),
        Outcome::KnownRelease => format!("composed {env}: same content as an earlier release"),
    };
    eprintln!("{what}");
    eprintln!(
        "  branch    {} ({})",
        env_branch(env),
        &release.commit[..12]
    );
    eprintln!("  base      {}", &release.base_commit[..12]);
    let cards: Vec<String> = release
        .cards
        .iter()
        .map(|c| format!("{} {}", c.id, &c.commit[..7]))
        .collect();
    eprintln!(
        "  cards     {}",
        if cards.is_empty() {
            "none".to_string()
        } else {
            cards.join(", ")
        }
    );
    for (service, build) in &composed.builds {
        let version = release.version_of(service).unwrap_or("");
        let how = match build {
            Built::Built(ms) => format!("built in {ms} ms"),
            Built::Reused => "artifact reused".to_string(),
        };
        eprintln!(
            "  service   {service} {} ({how})",
            &version[..version.len().min(12)]
        );
    }
    // The id alone on stdout, so `id=$(hifi compose uat)` works.
    println!("{}", release.id);
    Ok(())
}
