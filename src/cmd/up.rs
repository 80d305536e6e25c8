//! `hifi up`, `hifi down` and `hifi proxy`: the processes of hifi. The
//! control plane's life is the application layer's (`hifi_app::control`);
//! the proxy is served here, in the foreground, for `hifi up` to start.

use std::path::PathBuf;

use hifi_app::Error;
use hifi_core::Layout;

use super::Ctx;
use crate::cli::ProxyArgs;
use crate::error::Result;
use crate::output::{self, timestamp};

/// This binary, which also runs the proxy.
fn exe() -> Result<PathBuf> {
    Ok(std::env::current_exe()
        .map_err(|e| Error::Io(format!("cannot find the hifi binary: {e}")))?)
}

/// `hifi up [--detach]`.
pub fn up(ctx: &Ctx, detach: bool, reset_state: bool) -> Result {
    let mut project = ctx.open()?;
    let environments: Vec<(String, u16)> = project
        .config()
        .environments
        .iter()
        .map(|e| (e.name.clone(), e.port))
        .collect();
    if detach {
        let started = project.up_detached(&exe()?, reset_state)?;
        if ctx.out.json {
            output::json(&serde_json::json!({ "pid": started.pid, "log": started.log }));
        } else {
            println!(
                "hifi is up in the background (pid {}); log: {}",
                started.pid,
                started.log.display()
            );
            for (env, port) in &environments {
                println!("  {env:<10} http://127.0.0.1:{port}/");
            }
            println!("Stop it with `hifi down`.");
        }
        return Ok(());
    }
    let json = ctx.out.json;
    project.up(
        &exe()?,
        reset_state,
        move || {
            if !json {
                eprintln!("hifi is up. Environments:");
                for (env, port) in &environments {
                    eprintln!("  {env:<10} http://127.0.0.1:{port}/");
                }
                eprintln!("Ctrl-C or `hifi down` stops everything.");
            }
        },
        |e| {
            let env = e.env.as_deref().unwrap_or("-");
            eprintln!("{} {env:<8} {}", &timestamp(e.at)[11..], e.message);
        },
    )?;
    if !json {
        eprintln!("hifi stopped; every process it started is gone.");
    }
    Ok(())
}

/// `hifi down`.
pub fn down(ctx: &Ctx) -> Result {
    let stopped = ctx.open()?.down(&ctx.actor, &exe()?)?;
    if ctx.out.json {
        output::json(&serde_json::json!({
            "stopped": true,
            "message": stopped.message,
            "at": hifi_app::now_ms(),
        }));
    } else {
        println!("{}.", stopped.message);
    }
    Ok(())
}

/// `hifi proxy`: the data plane in the foreground.
pub fn proxy(ctx: &Ctx, args: ProxyArgs) -> Result {
    let layout = Layout::new(&ctx.dir);
    let state_dir = args.state_dir.unwrap_or_else(|| layout.proxy_tables());
    let admin = args.admin.unwrap_or_else(|| layout.proxy_socket());
    std::fs::create_dir_all(&state_dir)?;
    let mut options = hifi_proxy::ProxyOptions::new(state_dir, hifi_proxy::AdminAddr::unix(admin));
    if let Some(workers) = args.workers {
        options.workers = workers;
    }
    // With worker threads serving the connections, this runtime only
    // accepts, answers the admin socket and runs health checks.
    let mut builder = if options.workers > 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime
        .block_on(hifi_proxy::serve(options, hifi_app::control::terminated()))
        .map_err(|e| Error::Io(format!("the proxy stopped: {e}")))?)
}
