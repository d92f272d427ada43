//! `packsync plan`: what `apply` would change, and why.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::{Site, open_site};
use crate::cli::{ExitStatus, GlobalArgs, PlanArgs, Printer};
use crate::config::SiteConfig;
use crate::diagnostics::{Problem, Report};
use crate::execute::{self, Planned};
use crate::model::{
    Action, Change, EnvInputs, PackName, Pin, Plan, Revision, RunnerChange, short_commit,
};
use crate::pack::content::Resource;
use crate::source::{FileChange, Repo};

/// `--json` output: `{"changes": [...], "summary": {...}, "problems": [...]}`.
#[derive(Serialize)]
pub(super) struct PlanReport<'a> {
    changes: &'a [Change],
    /// The runner set to switch to; absent when it stays.
    #[serde(skip_serializing_if = "Option::is_none")]
    runners: Option<&'a RunnerChange>,
    /// Per pack, what StackStorm holds that the new release does not carry: purged after its
    /// registration (with `[stackstorm] registered` and `purge` set).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    purges: &'a BTreeMap<PackName, Vec<Resource>>,
    /// Per pack, with `--diff`: its files and distributions the change adds, changes and
    /// removes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    diffs: &'a BTreeMap<PackName, PackDiff>,
    summary: Summary,
    problems: &'a [Problem],
}

#[derive(Serialize)]
pub(super) struct Summary {
    #[serde(flatten)]
    counts: BTreeMap<&'static str, usize>,
    /// How many changes would touch the host.
    changes: usize,
    /// Packs that could not be planned (see `problems`).
    errors: usize,
}

pub(crate) fn plan(
    global: &GlobalArgs,
    args: &PlanArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site {
        config,
        store,
        _lock,
    } = match open_site(global, None, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let only: Option<BTreeSet<PackName>> =
        (!args.packs.is_empty()).then(|| args.packs.iter().cloned().collect());
    let planned = execute::plan(&config, store.as_ref(), only.as_ref())?;
    let (purges, purge_problems) = execute::preview_purges(&config, &planned);
    let diffs = if args.diff {
        diffs(&config, &planned)
    } else {
        BTreeMap::new()
    };
    let Planned {
        mut resolution,
        plan,
        host_suspended,
        ..
    } = planned;
    resolution.problems.extend(purge_problems);
    if let Some(host) = &host_suspended {
        printer.note(format_args!(
            "note: this host is suspended since {} ({}): `apply` changes nothing until \
             `packsync resume`",
            host.at, host.reason
        ));
    }
    let summary = summary(&plan, resolution.desired.unresolved.len());
    if global.json {
        printer.json(&PlanReport {
            changes: &plan.changes,
            runners: plan.runners.as_ref(),
            purges: &purges,
            diffs: &diffs,
            summary,
            problems: &resolution.problems,
        });
    } else {
        for problem in &resolution.problems {
            printer.problem(problem);
        }
        printer.data(render(&plan, &purges, &diffs, &summary));
    }
    Ok(if resolution.has_errors() {
        ExitStatus::Failure
    } else if args.detailed_exitcodes && plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}

pub(super) fn summary(plan: &Plan, errors: usize) -> Summary {
    let counts: BTreeMap<&'static str, usize> = plan
        .counts()
        .into_iter()
        .map(|(action, n)| (action.as_str(), n))
        .collect();
    let changes = plan
        .changes
        .iter()
        .filter(|c| c.action.changes_host())
        .count()
        + usize::from(plan.runners.is_some());
    Summary {
        counts,
        changes,
        errors,
    }
}

/// A line per change with its reasons and what it purges below, then a one-line summary.
pub(super) fn render(
    plan: &Plan,
    purges: &BTreeMap<PackName, Vec<Resource>>,
    diffs: &BTreeMap<PackName, PackDiff>,
    summary: &Summary,
) -> String {
    let width = plan
        .changes
        .iter()
        .map(|c| c.pack.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if let Some(runners) = &plan.runners {
        let from = runners
            .from
            .as_ref()
            .map_or_else(|| "none".to_string(), |digest| digest.short().to_string());
        let _ = writeln!(
            out,
            "{:<11} runners  set {from} -> {}: {}",
            "switch",
            runners.to.digest().short(),
            runners.to.requirements.join(", ")
        );
        for reason in &runners.reasons {
            let _ = writeln!(out, "    {reason}");
        }
    }
    for change in &plan.changes {
        let revisions = revision_change(change.from.as_ref(), change.to.as_ref());
        let _ = writeln!(
            out,
            "{:<11} {:<width$}  {revisions}",
            change.action.as_str(),
            change.pack.as_str()
        );
        for reason in &change.reasons {
            let _ = writeln!(out, "    {reason}");
        }
        let version = change.to.as_ref().map(|to| to.version.to_string());
        for resource in purges.get(&change.pack).into_iter().flatten() {
            let _ = writeln!(
                out,
                "    purge {resource}: not in {}",
                version.as_deref().unwrap_or("the new release")
            );
        }
        if let Some(diff) = diffs.get(&change.pack) {
            render_diff(&mut out, diff);
        }
    }
    let counts: Vec<String> = Action::ALL
        .iter()
        .filter_map(|action| {
            let n = summary.counts[action.as_str()];
            (n > 0).then(|| match action {
                Action::Unchanged => format!("{n} unchanged"),
                Action::Orphan => format!("{n} orphaned"),
                _ => format!("{n} to {action}"),
            })
        })
        .chain((summary.errors > 0).then(|| format!("{} not planned (errors)", summary.errors)))
        .collect();
    let counts: Vec<String> = plan
        .runners
        .iter()
        .map(|_| "runner set to switch".to_string())
        .chain(counts)
        .collect();
    if counts.is_empty() {
        out.push_str("Plan: no packs");
    } else {
        let _ = write!(out, "Plan: {}", counts.join(", "));
    }
    out
}

/// What a change does to a pack's files and to its virtualenv (`plan --diff`).
#[derive(Debug, Serialize)]
pub(super) struct PackDiff {
    /// The files of the pack tree it adds (`A`), modifies (`M`) and deletes (`D`); absent for
    /// a pack with no live release (every file is new) or none desired.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileChange>>,
    /// Why the files are not listed, when the trees could not be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    files_unknown: Option<String>,
    /// The distributions its virtualenv gains (`from` absent), loses (`to` absent) or has at
    /// another version.
    dists: Vec<DistChange>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub(super) struct DistChange {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
}

/// The diff of each change that touches the host: its pack tree against the live one (in its
/// repo), its pinned distributions against the live virtualenv's.
fn diffs(config: &SiteConfig, planned: &Planned) -> BTreeMap<PackName, PackDiff> {
    let mut diffs = BTreeMap::new();
    for change in planned
        .plan
        .changes
        .iter()
        .filter(|change| change.action.changes_host())
    {
        let pins = |inputs: Option<&EnvInputs>| inputs.map(|inputs| inputs.pins.clone());
        let live = planned
            .observed
            .installed
            .packs
            .get(&change.pack)
            .and_then(|pack| pins(pack.env_inputs.as_ref()));
        let desired = planned
            .resolution
            .desired
            .packs
            .iter()
            .find(|pack| pack.name == change.pack)
            .and_then(|pack| pins(Some(&pack.env_inputs)));
        let (files, files_unknown) = match (&change.from, &change.to) {
            (Some(from), Some(to)) => {
                let repo = config
                    .packs
                    .iter()
                    .find(|pack| pack.name == change.pack)
                    .map(|pack| &pack.repo);
                match repo.map(|repo| {
                    Repo::open(repo)
                        .and_then(|repo| repo.changed_files(from.tree.hex(), to.tree.hex()))
                }) {
                    Some(Ok(files)) => (Some(files), None),
                    Some(Err(err)) => (None, Some(Report::new(&err).to_string())),
                    None => (None, None),
                }
            }
            _ => (None, None),
        };
        diffs.insert(
            change.pack.clone(),
            PackDiff {
                files,
                files_unknown,
                dists: dist_changes(
                    live.as_deref().unwrap_or_default(),
                    desired.as_deref().unwrap_or_default(),
                ),
            },
        );
    }
    diffs
}

/// The distributions `to` has and `from` has not, `from` has and `to` has not, and both have
/// at different versions, by name.
fn dist_changes(from: &[Pin], to: &[Pin]) -> Vec<DistChange> {
    let versions = |pins: &[Pin]| -> BTreeMap<String, String> {
        pins.iter()
            .map(|pin| (pin.name.clone(), pin.version.clone()))
            .collect()
    };
    let (from, to) = (versions(from), versions(to));
    let names: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (from.get(name), to.get(name));
            (old != new).then(|| DistChange {
                name: name.clone(),
                from: old.cloned(),
                to: new.cloned(),
            })
        })
        .collect()
}

/// `    file A actions/new.py`, under the change's line. The distributions are in its reasons
/// already (`six 1.16.0 -> 1.17.0 (mirror)`); `--json` has them apart.
fn render_diff(out: &mut String, diff: &PackDiff) {
    for file in diff.files.iter().flatten() {
        let _ = writeln!(out, "    file {} {}", file.status, file.path);
    }
    if let Some(why) = &diff.files_unknown {
        let _ = writeln!(
            out,
            "    files unknown: {}",
            why.lines().next().unwrap_or_default()
        );
    }
}

/// `1.8.0 (v1.8.0 @ 0c1d2e3) -> 1.8.1 (v1.8.1 @ 3f2a9c1)`, or the one revision there is.
pub(super) fn revision_change(from: Option<&Revision>, to: Option<&Revision>) -> String {
    match (from, to) {
        (Some(from), Some(to)) if from != to => {
            format!("{} -> {}", revision(from), revision(to))
        }
        (_, Some(one)) | (Some(one), None) => revision(one),
        (None, None) => String::new(),
    }
}

/// `1.8.1 (v1.8.1 @ 3f2a9c1)`
pub(super) fn revision(revision: &Revision) -> String {
    format!(
        "{} ({} @ {})",
        revision.version,
        revision.git_ref,
        short_commit(&revision.commit)
    )
}
