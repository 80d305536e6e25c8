//! `hifi init`: scaffold `hifi.toml` and `.hifi/` in a git repository.

use hifi_core::layout::{CONFIG_FILE, STATE_DIR};

use super::Ctx;
use crate::error::Result;
use crate::output;

/// Runs `hifi init` in the repository containing the working directory.
pub fn run(ctx: &Ctx) -> Result {
    let report = hifi_app::init::init(&ctx.dir, &ctx.actor)?;
    if ctx.out.json {
        output::json(&report);
        return Ok(());
    }
    println!("Created {CONFIG_FILE} and {STATE_DIR}/ (ignored by git).");
    println!("  base branch:  {}", report.base);
    println!("  environments: {}", report.environments.join(" → "));
    if report.services.is_empty() {
        println!(
            "  services:     none found under services/; add [[service]] entries to {CONFIG_FILE}"
        );
    } else {
        println!(
            "  services:     {} (check their run commands in {CONFIG_FILE})",
            report.services.join(", ")
        );
    }
    println!("Next: hifi card add ID --branch BRANCH, then hifi compose dev");
    Ok(())
}
