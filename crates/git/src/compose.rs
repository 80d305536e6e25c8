//! Composition: a base commit plus branches, merged one after another.
//!
//! Each branch is merged into the result so far with [`Repo::merge`] and
//! recorded as a two-parent commit dated like its newest input, so the same
//! inputs in the same order always give the same commit. Choosing the
//! branches and their order is the caller's business (it is a rule of the
//! workflow, not of git); so is moving the environment branch afterwards,
//! with [`Repo::update_ref`].

use crate::{CommitDate, MergeOutcome, Oid, Repo, Result};

/// A branch to merge into a composition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingredient {
    /// How the merge commit names it, e.g. `PAY-12 (feature/pay-12)`.
    pub label: String,
    /// The commit to merge.
    pub commit: Oid,
}

/// The outcome of [`Repo::compose`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Composition {
    /// Every ingredient merged cleanly.
    Composed {
        /// The final commit (the base itself when nothing changed it).
        commit: Oid,
        /// Its tree.
        tree: Oid,
        /// Indices of ingredients that changed nothing (already contained in
        /// the result, or empty), so got no merge commit.
        unchanged: Vec<usize>,
    },
    /// An ingredient conflicts with the base or with those merged before it.
    Conflict {
        /// Index of the ingredient that could not be merged.
        index: usize,
        /// Paths with conflicts.
        files: Vec<String>,
        /// Git's explanation.
        messages: String,
        /// Indices of earlier ingredients that changed any of `files`; empty
        /// when the conflict is with the base alone.
        blamed: Vec<usize>,
    },
}

impl Repo {
    /// Merges `ingredients`, in order, onto `base`, writing merge commits
    /// (message `Merge <label>`) but no ref.
    ///
    /// Costs one git process to read the inputs plus two per ingredient.
    pub fn compose(&self, base: &Oid, ingredients: &[Ingredient]) -> Result<Composition> {
        let mut inputs = Vec::with_capacity(ingredients.len() + 1);
        inputs.push(base.clone());
        inputs.extend(ingredients.iter().map(|i| i.commit.clone()));
        let infos = self.commit_infos(&inputs)?;

        let mut commit = infos[0].id.clone();
        let mut tree = infos[0].tree.clone();
        let mut date: CommitDate = infos[0].committer_date;
        let mut unchanged = Vec::new();
        for (index, (ingredient, info)) in ingredients.iter().zip(&infos[1..]).enumerate() {
            date = date.max(info.committer_date);
            match self.merge(&commit, &info.id)? {
                MergeOutcome::Clean { tree: merged } if merged == tree => unchanged.push(index),
                MergeOutcome::Clean { tree: merged } => {
                    let message = format!("Merge {}", ingredient.label);
                    commit =
                        self.commit_tree(&merged, &[commit, info.id.clone()], &message, &date)?;
                    tree = merged;
                }
                MergeOutcome::Conflict { files, messages } => {
                    let blamed = self.blame(base, &ingredients[..index], &unchanged, &files)?;
                    return Ok(Composition::Conflict {
                        index,
                        files,
                        messages,
                        blamed,
                    });
                }
            }
        }
        Ok(Composition::Composed {
            commit,
            tree,
            unchanged,
        })
    }

    /// Earlier ingredients that touched any of `files`.
    fn blame(
        &self,
        base: &Oid,
        earlier: &[Ingredient],
        unchanged: &[usize],
        files: &[String],
    ) -> Result<Vec<usize>> {
        let mut blamed = Vec::new();
        for (index, ingredient) in earlier.iter().enumerate() {
            if unchanged.contains(&index) {
                continue;
            }
            let changed = self.changed_files(base, &ingredient.commit)?;
            if changed.iter().any(|f| files.contains(f)) {
                blamed.push(index);
            }
        }
        Ok(blamed)
    }
}
