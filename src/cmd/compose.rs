//! `hifi compose ENV`: compose an environment and print its release id.

use hifi_app::compose::Built;
use hifi_app::compose::{Outcome, env_branch};
use serde::Serialize;

use super::Ctx;
use crate::error::Result;
use crate::output;

#[derive(Serialize)]
struct Report<'a> {
    env: &'a str,
    branch: String,
    outcome: &'static str,
    release: &'a hifi_core::Release,
    built: Vec<&'a str>,
    images_built: Vec<&'a str>,
}

/// Runs `hifi compose ENV`.
pub fn run(ctx: &Ctx, env: &str) -> Result {
    let json = ctx.out.json;
    let composed = ctx.open()?.compose(&ctx.actor, env, &mut |step| {
        if !json {
            eprintln!("  {step}");
        }
    })?;
    let release = &composed.release;
    let built_now = |list: &'_ [(String, Built)]| -> Vec<String> {
        list.iter()
            .filter(|(_, b)| matches!(b, Built::Built(..)))
            .map(|(s, _)| s.clone())
            .collect()
    };
    let (built, images_built) = (built_now(&composed.builds), built_now(&composed.images));
    let built: Vec<&str> = built.iter().map(String::as_str).collect();
    let images_built: Vec<&str> = images_built.iter().map(String::as_str).collect();
    if json {
        output::json(&Report {
            env,
            branch: env_branch(env),
            outcome: composed.outcome.as_str(),
            release,
            built,
            images_built,
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
            Built::Built(ms, _) => format!("built in {ms} ms"),
            Built::Reused => "artifact reused".to_string(),
        };
        eprintln!(
            "  service   {service} {} ({how})",
            &version[..version.len().min(12)]
        );
    }
    for (service, build) in &composed.images {
        let id = release
            .service(service)
            .and_then(|v| v.image_id.as_deref())
            .unwrap_or("");
        let how = match build {
            Built::Built(ms, _) => format!("built in {ms} ms"),
            Built::Reused => "reused".to_string(),
        };
        eprintln!("  image     {service} {} ({how})", &id[..id.len().min(19)]);
    }
    // The id alone on stdout, so `id=$(hifi compose uat)` works.
    println!("{}", release.id);
    Ok(())
}
