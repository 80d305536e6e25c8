//! `hifi manifests ENV [--release ID] [--rbac]`: an environment's
//! Kubernetes objects, or the Role hifi needs there, as YAML (JSON with
//! `--json`).

use hifi_runtime::kubernetes::objects::{self, Object};

use super::Ctx;
use crate::error::{Failure, Result};
use crate::output;

/// `hifi manifests`.
pub fn run(ctx: &Ctx, env: &str, release: Option<&str>, rbac: bool) -> Result {
    let project = ctx.open()?;
    let objects: Vec<Object> = if rbac {
        vec![project.rbac(&ctx.actor, env)?]
    } else {
        project.manifests(&ctx.actor, env, release)?
    };
    if ctx.out.json {
        output::json(&objects);
        return Ok(());
    }
    if rbac {
        let namespace = objects[0].meta().namespace.clone().unwrap_or_default();
        println!("# The Role hifi needs in namespace {namespace}. Bind it to the identity of");
        println!("# hifi's kubeconfig, e.g.:");
        println!("#   kubectl -n {namespace} create rolebinding hifi --role=hifi --user=NAME");
        println!("# (or --serviceaccount=NAMESPACE:NAME). hifi does not create namespaces.");
    }
    let yaml = objects::to_yaml(&objects).map_err(Failure::other)?;
    print!("{yaml}");
    Ok(())
}
