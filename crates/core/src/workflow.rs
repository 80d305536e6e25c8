//! The card workflow: an ordered list of stages. A card's stage decides which
//! environments include it — an environment composed "from In Test" takes
//! every card at In Test or any later stage.
//!
//! Users name stages loosely on the command line (`in-test`,
//! `ready_for_po_sign_off`), so matching ignores case, spaces, dashes and
//! underscores. Two stages that would match the same loose name are refused
//! when the config is read.

use std::fmt;

/// The stages of the default workflow, in order.
pub const DEFAULT_STAGES: [&str; 8] = [
    "Ready for Dev",
    "In Dev",
    "Ready for Test",
    "In Test",
    "Ready for PO Sign-Off",
    "Ready for Production",
    "Deploy",
    "Done",
];

/// One stage: its position in the workflow and its display name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stage {
    /// Position in the workflow, 0 for the first stage.
    pub rank: usize,
    /// The name as written in the config.
    pub name: String,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The ordered stages of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    stages: Vec<String>,
}

/// The loose form of a stage name: lowercase letters and digits only.
pub fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Default for Workflow {
    fn default() -> Self {
        Workflow {
            stages: DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Workflow {
    /// Builds a workflow, refusing an empty list and names that collide
    /// once normalized.
    pub fn new(stages: Vec<String>) -> Result<Self, String> {
        if stages.is_empty() {
            return Err("the workflow needs at least one stage".into());
        }
        for (i, stage) in stages.iter().enumerate() {
            if normalize(stage).is_empty() {
                return Err(format!("stage `{stage}` has no letters or digits"));
            }
            if let Some(other) = stages[..i]
                .iter()
                .find(|o| normalize(o) == normalize(stage))
            {
                return Err(format!(
                    "stages `{other}` and `{stage}` cannot be told apart (names match ignoring case, spaces, dashes and underscores)"
                ));
            }
        }
        Ok(Workflow { stages })
    }

    /// Finds a stage by a loosely written name.
    pub fn find(&self, name: &str) -> Option<Stage> {
        let wanted = normalize(name);
        self.stages
            .iter()
            .position(|s| normalize(s) == wanted)
            .map(|rank| self.stage(rank))
    }

    /// Finds a stage, or explains which names exist.
    pub fn resolve(&self, name: &str) -> Result<Stage, String> {
        self.find(name).ok_or_else(|| {
            format!(
                "unknown stage `{name}`; the stages are: {}",
                self.stages.join(", ")
            )
        })
    }

    /// The stage at a rank. Panics on a rank past the end, which only a bug
    /// can produce: ranks come from this workflow.
    pub fn stage(&self, rank: usize) -> Stage {
        Stage {
            rank,
            name: self.stages[rank].clone(),
        }
    }

    /// The first stage, where new cards start.
    pub fn first(&self) -> Stage {
        self.stage(0)
    }

    /// The last stage (Done): where a card is once its release is verified
    /// in production.
    pub fn last(&self) -> Stage {
        self.stage(self.stages.len() - 1)
    }

    /// The stage before the last (Deploy): where a card is while its
    /// release is being promoted into production. The first stage when the
    /// workflow has only one.
    pub fn deploying(&self) -> Stage {
        self.stage(self.stages.len().saturating_sub(2))
    }

    /// Every stage in order.
    pub fn stages(&self) -> impl Iterator<Item = Stage> + '_ {
        (0..self.stages.len()).map(|rank| self.stage(rank))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_match_loosely() {
        let wf = Workflow::default();
        assert_eq!(wf.find("in-test").unwrap().name, "In Test");
        assert_eq!(
            wf.find("ready_for_po_sign_off").unwrap().name,
            "Ready for PO Sign-Off"
        );
        assert_eq!(wf.find("DONE").unwrap().rank, 7);
        assert!(wf.find("in tst").is_none());
    }

    #[test]
    fn refuses_colliding_and_empty_workflows() {
        assert!(Workflow::new(vec![]).is_err());
        assert!(Workflow::new(vec!["In Test".into(), "in-test".into()]).is_err());
        assert!(Workflow::new(vec!["--".into()]).is_err());
    }

    #[test]
    fn unknown_stage_lists_the_stages() {
        let err = Workflow::default().resolve("shipped").unwrap_err();
        assert!(err.contains("Ready for Dev") && err.contains("Done"));
    }
}
