//! `hifi up`, `hifi down` and `hifi proxy`: the processes of hifi. The
//! control plane's life is the application layer's (`hifi_app::control`);
//! the proxy is served here, in the foreground, for `hifi up` to start.

use std::path::PathBuf;

use std::sync::Arc;

use hifi_app::control::Alongside;
use hifi_app::{Error, Project};
use hifi_core::Layout;
use tokio_util::sync::CancellationToken;

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
    let metrics = Arc::new(hifi_server::Metrics::new());
    let alongside = alongside(&project, json, &metrics);
    let on_pass = hifi_app::PassHook(Arc::new(move |env, took, ok| {
        metrics.reconcile(env, took, ok);
    }));
    project.up(
        &exe()?,
        reset_state,
        alongside,
        Some(on_pass),
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

/// What runs beside the control plane: the team server when `[server]` is
/// configured, the webhooks when `[[notify]]` is.
fn alongside(project: &Project, json: bool, metrics: &Arc<hifi_server::Metrics>) -> Vec<Alongside> {
    let config = project.config();
    let root = project.layout().root().to_path_buf();
    let metrics = metrics.clone();
    let mut services: Vec<Alongside> = Vec::new();
    let dashboard = config.server.as_ref().map(|s| s.public_url());
    if let Some(server) = config.server.clone() {
        let (root, metrics, url) = (
            root.clone(),
            metrics.clone(),
            dashboard.clone().unwrap_or_default(),
        );
        services.push(Box::new(move |stop: CancellationToken| {
            let tcp = std::net::TcpListener::bind(server.listen)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std)
                .map_err(|e| {
                    Error::Io(format!(
                        "the team server cannot listen on {}: {e}",
                        server.listen
                    ))
                })?;
            let listener = match &server.tls {
                None => hifi_server::Listener::plain(tcp),
                Some(tls) => {
                    hifi_server::Listener::tls(tcp, &root.join(&tls.cert), &root.join(&tls.key))
                        .map_err(|e| Error::Io(format!("the team server's TLS: {e}")))?
                }
            };
            if !json {
                eprintln!("team server on {url}/api/v1 (OpenAPI: {url}/api/v1/openapi.json)");
            }
            let mut options = hifi_server::Options::new(&root);
            options.metrics = metrics;
            options.public_url = server.url.clone();
            Ok(Box::pin(async move {
                if let Err(e) = hifi_server::serve(options, listener, stop).await {
                    tracing::error!("the team server stopped: {e}");
                }
            }))
        }));
    }
    if !config.notify.is_empty() {
        let targets = config.notify.clone();
        let name = config.name.clone();
        let db = project.layout().db();
        services.push(Box::new(move |stop: CancellationToken| {
            let notifier = hifi_server::notify::Notifier::new(
                db,
                &name,
                dashboard,
                targets,
                Arc::new(hifi_core::clock::SystemClock),
                // Secrets come from hifi's own environment at each delivery.
                Arc::new(|var: &str| std::env::var(var).ok()),
                metrics,
                hifi_server::notify::Options::default(),
            )
            .map_err(Error::Io)?;
            Ok(Box::pin(notifier.run(stop)))
        }));
    }
    services
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
    let admin = hifi_proxy::AdminClient::new(options.admin.path());
    let cluster = match &args.table_configmap {
        Some(name) => Some((
            name.clone(),
            hifi_runtime::kubernetes::table_source::in_cluster()
                .map_err(|e| Error::Io(format!("--table-configmap {name}: {e}")))?,
        )),
        None => None,
    };
    let status = match args.status_listen {
        Some(addr) => Some(
            runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|e| Error::Io(format!("--status-listen {addr}: {e}")))?,
        ),
        None => None,
    };
    Ok(runtime
        .block_on(async move {
            let serving = hifi_proxy::serve(options, hifi_app::control::terminated());
            let extras = async {
                let status = async {
                    if let Some(listener) = status {
                        hifi_proxy::serve_status(listener, admin.clone(), std::future::pending())
                            .await;
                    }
                };
                let tables = async {
                    if let Some((name, (client, namespace))) = cluster {
                        follow_configmap(client, &namespace, &name, &admin).await;
                    }
                };
                tokio::join!(status, tables);
                std::future::pending::<()>().await;
            };
            tokio::select! {
                served = serving => served,
                () = extras => Ok(()),
            }
        })
        .map_err(|e| Error::Io(format!("the proxy stopped: {e}")))?)
}

/// Feeds the proxy (through its admin socket) the tables of ConfigMap
/// `name`, as they change.
async fn follow_configmap(
    client: kube::Client,
    namespace: &str,
    name: &str,
    admin: &hifi_proxy::AdminClient,
) {
    use hifi_runtime::kubernetes::table_source::{TableChange, follow};
    // The admin socket appears once the proxy has loaded its tables.
    for _ in 0..200 {
        if admin.tables().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut serving: Option<String> = None;
    follow(
        client,
        namespace,
        name,
        async |change| match change {
            TableChange::Table(json) => {
                let env = serde_json::from_slice::<serde_json::Value>(&json)
                    .ok()
                    .and_then(|v| v.get("env")?.as_str().map(str::to_owned))
                    .ok_or_else(|| "the table names no environment".to_owned())?;
                admin
                    .put_table_json(&env, json)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(old) = serving.replace(env.clone())
                    && old != env
                {
                    let _ = admin.remove_table(&old).await;
                }
                tracing::info!(%env, "routing table taken from ConfigMap {namespace}/{name}");
                Ok(())
            }
            TableChange::Removed => {
                if let Some(env) = serving.take() {
                    admin.remove_table(&env).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        },
        std::future::pending(),
    )
    .await;
}
