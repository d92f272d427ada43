//! What `plan` says a change will purge: what StackStorm holds for the pack now
//! (`[stackstorm] registered`) that the release the change goes to does not carry, read from
//! its Git tree as StackStorm's registrars read the files (`pack::content`).
//!
//! The purge itself runs after the registration (`step::purge_into`), against what StackStorm
//! holds then; this is the preview.

use std::collections::BTreeMap;

use super::Planned;
use crate::config::SiteConfig;
use crate::desired::content_files;
use crate::diagnostics::{Problem, Report, Severity};
use crate::engine::{self, Placeholders};
use crate::model::PackName;
use crate::pack::content::{Resource, content};
use crate::source::{Repo, SourceError};
use crate::store::{Layout, ReleasePaths};

/// Per pack whose change switches a release, what the purge after it would remove; and why
/// a pack could not be previewed (warnings: the plan stands without it).
pub fn preview_purges(
    config: &SiteConfig,
    planned: &Planned,
) -> (BTreeMap<PackName, Vec<Resource>>, Vec<Problem>) {
    let mut purges = BTreeMap::new();
    let mut problems = Vec::new();
    let Some((registered, _)) = config.stackstorm.purging() else {
        return (purges, problems);
    };
    let layout = Layout::new(config);
    for change in &planned.plan.changes {
        let Some(to) = change.to.as_ref().filter(|_| change.action.changes_host()) else {
            continue;
        };
        let Some(pack) = config.packs.iter().find(|p| p.name == change.pack) else {
            continue;
        };
        let carried = Repo::open(&pack.repo)
            .and_then(|repo| {
                let tree = repo.pack_tree(&to.commit, pack.subdir.as_deref())?;
                Ok::<_, SourceError>(content(&pack.name, &content_files(&tree)?))
            })
            .map_err(|err| Report::new(&err));
        let values = Placeholders {
            pack: pack.name.clone(),
            pack_dir: layout.pack_link(&pack.name),
            release_dir: ReleasePaths::at(layout.current(&pack.name), &pack.name).pack,
            venv_dir: layout.venv_link(&pack.name),
            config_file: layout.config_link(&pack.name),
        };
        let held = engine::registered(registered, &values, &config.stackstorm)
            .map_err(|err| Report::new(&err));
        match (held, carried) {
            (Ok(held), Ok(carried)) => {
                let stale: Vec<Resource> = held.difference(&carried).cloned().collect();
                if !stale.is_empty() {
                    purges.insert(pack.name.clone(), stale);
                }
            }
            (Err(mut report), _) | (_, Err(mut report)) => {
                report.pack = Some(pack.name.clone());
                report.message = format!("Cannot tell what the change purges: {}", report.message);
                problems.push(Problem {
                    severity: Severity::Warning,
                    report,
                });
            }
        }
    }
    (purges, problems)
}
