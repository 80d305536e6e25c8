//! Counts for the control plane's metrics: deployments by outcome and
//! canary verdicts, per environment, read in one query each.

use hifi_core::{DeploymentState, Verdict};

use crate::{Result, Store};

impl Store {
    /// How many deployments each environment had, by their state.
    pub fn deployment_counts(&self) -> Result<Vec<(String, DeploymentState, i64)>> {
        let mut stmt = self.conn().prepare(
            "SELECT env, state, COUNT(*) FROM deployments GROUP BY env, state ORDER BY env, state",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many canary steps each environment had judged, by verdict.
    pub fn verdict_counts(&self) -> Result<Vec<(String, Verdict, i64)>> {
        let mut stmt = self.conn().prepare(
            "SELECT d.env, a.verdict, COUNT(*) FROM analyses a JOIN deployments d ON d.id = a.deployment
             GROUP BY d.env, a.verdict ORDER BY d.env, a.verdict",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
