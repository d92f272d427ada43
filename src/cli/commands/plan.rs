//! `packsync plan`: what `apply` would change, and why.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::{Site, open_site};
use crate::cli::{ExitStatus, GlobalArgs, PlanArgs, Printer};
use crate::diagnostics::Problem;
use crate::execute::{self, Planned};
use crate::model::{Action, Change, PackName, Plan, Revision, RunnerChange, short_commit};
use crate::pack::content::Resource;

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
            summary,
            problems: &resolution.problems,
        });
    } else {
        for problem in &resolution.problems {
            printer.problem(problem);
        }
        printer.data(render(&plan, &purges, &summary));
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
