//! `hifi compose ENV`: compose an environment and print its release id.

use hifi_app::reports::{ComposeReport, ServiceBuild};
use serde::Serialize;

use super::Ctx;
use crate::error::Result;
use crate::output;

#[derive(Serialize)]
struct Report<'a> {
    env: &'a str,
    branch: &'a str,
    outcome: &'a str,
    release: &'a hifi_core::Release,
    built: Vec<&'a str>,
    images_built: Vec<&'a str>,
}

/// The services built now (not reused).
fn built_now(list: &[ServiceBuild]) -> Vec<&str> {
    list.iter()
        .filter(|b| b.built_ms.is_some())
        .map(|b| b.service.as_str())
        .collect()
}

/// Runs `hifi compose ENV`.
pub fn run(ctx: &Ctx, env: &str) -> Result {
    let json = ctx.out.json;
    let composed: ComposeReport = ctx.hifi()?.compose(env, &mut |step| {
        if !json {
            eprintln!("  {step}");
        }
    })?;
    let release = &composed.release;
    if json {
        output::json(&Report {
            env,
            branch: &composed.branch,
            outcome: &composed.outcome,
            release,
            built: built_now(&composed.builds),
            images_built: built_now(&composed.images),
        });
        return Ok(());
    }
    eprintln!("{}", composed.headline());
    eprintln!(
        "  branch    {} ({})",
        composed.branch,
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
    let how = |b: &ServiceBuild, reused: &str| match b.built_ms {
        Some(ms) => format!("built in {ms} ms"),
        None => reused.to_string(),
    };
    for b in &composed.builds {
        let version = release.version_of(&b.service).unwrap_or("");
        eprintln!(
            "  service   {} {} ({})",
            b.service,
            &version[..version.len().min(12)],
            how(b, "artifact reused")
        );
    }
    for b in &composed.images {
        let id = release
            .service(&b.service)
            .and_then(|v| v.image_id.as_deref())
            .unwrap_or("");
        eprintln!(
            "  image     {} {} ({})",
            b.service,
            &id[..id.len().min(19)],
            how(b, "reused")
        );
    }
    // The id alone on stdout, so `id=$(hifi compose uat)` works.
    println!("{}", release.id);
    Ok(())
}
