//! What other crates' tests need the store to say as the control plane
//! would say it (feature `testing`, for dev-dependencies only).

use hifi_core::DeploymentState;

use crate::{Audit, Result, Store, Update};

/// Records that deployment `id` went live in `env` — active in its slot,
/// the previous release kept as standby — and was verified there, at
/// `now` (unix ms), as the controller records it step by step.
pub fn went_live(store: &mut Store, env: &str, id: i64, now: i64) -> Result<()> {
    let audit = Audit {
        actor: "hifi".into(),
        at: now,
    };
    let deployment = store.deployment(id)?;
    let mut routing = store.routing(env)?;
    routing
        .begin(deployment.release.clone())
        .map(drop)
        .and_then(|()| routing.promote(now))
        .map_err(|e| crate::Error::Refused(e.to_string()))?;
    for state in [
        DeploymentState::Building,
        DeploymentState::Starting,
        DeploymentState::Verifying,
        DeploymentState::Live,
    ] {
        store.update_deployment(
            &audit,
            id,
            Update {
                state: Some(state),
                routing: (state == DeploymentState::Live).then_some(&routing),
                ..Default::default()
            },
        )?;
    }
    store.record_verification(&audit, env, &deployment.release)?;
    Ok(())
}
