//! `packsync apply`: carries out the plan; Puppet's detailed exit codes.
//!
//! `--json` prints `{"changes": [...], "steps": [...], "repaired": [...], "summary": {...},
//! "problems": [...]}`: the plan, then the outcome of every change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::plan::{render, revision, summary};
use super::{Site, open_site};
use crate::cli::{ApplyArgs, ExitStatus, GlobalArgs, Printer, ProgressView};
use crate::diagnostics::{Problem, Severity};
use crate::execute::{
    self, Applied, ApplyOptions, DryRun, FailedBuildPolicy, Phase, RunInfo, RunnerStep, StepReport,
};
use crate::model::{Change, PackName, ReleaseId};
use crate::state::{Operation, Outcome};

#[derive(Serialize)]
struct ApplyReport<'a> {
    noop: bool,
    changes: &'a [Change],
    steps: &'a [StepReport],
    /// The runner set switch; absent when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    runners: Option<&'a RunnerStep>,
    repaired: Vec<Repaired<'a>>,
    summary: ApplySummary,
    problems: &'a [Problem],
}

#[derive(Serialize)]
struct Repaired<'a> {
    pack: &'a PackName,
    recorded: Option<&'a str>,
    live: Option<&'a str>,
}

#[derive(Serialize)]
struct ApplySummary {
    /// Changes applied.
    applied: usize,
    /// Changes that failed, or were rolled back, plus packs that could not be planned.
    failed: usize,
    /// Changes the plan has (with `--noop`: pending).
    planned: usize,
    unchanged: usize,
}

pub(crate) fn apply(
    global: &GlobalArgs,
    args: &ApplyArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    // `--noop` changes nothing, so it neither waits for nor blocks a run.
    let lock = (!args.noop).then_some(&args.lock);
    let Site {
        config,
        store,
        _lock,
    } = match open_site(global, lock, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let options = apply_options(args);
    let view = ProgressView::new(global.progress, global.quiet);
    let progress = |pack: &PackName, phase: Phase<'_>| view.show(pack, phase);
    let run = RunInfo::new(config.host());
    let applied = execute::apply(&config, store.as_ref(), &options, run.clone(), &progress);
    view.clear();
    let applied = match applied {
        Ok(applied) => applied,
        // Skipped, like a run that finds the lock held (Puppet's and design.md's 75).
        Err(err @ execute::ExecuteError::HostSuspended { .. }) => {
            printer.problem(&Problem {
                severity: Severity::Error,
                report: crate::diagnostics::Report::new(&err),
            });
            return Ok(ExitStatus::Locked);
        }
        Err(err) => return Err(err.into()),
    };
    let plan = &applied.planned.plan;
    let failed = applied.failures();
    let planned = applied.planned();
    let report = ApplyReport {
        noop: args.noop,
        changes: &plan.changes,
        steps: &applied.steps,
        runners: applied.runners.as_ref(),
        repaired: applied
            .planned
            .observed
            .drift
            .iter()
            .map(|d| Repaired {
                pack: &d.pack,
                recorded: d.recorded.as_ref().map(ReleaseId::as_str),
                live: d.live.as_ref().map(ReleaseId::as_str),
            })
            .collect(),
        summary: ApplySummary {
            applied: applied.changes(),
            failed,
            planned,
            unchanged: applied.unchanged(),
        },
        problems: &applied.planned.resolution.problems,
    };
    if global.json {
        printer.json(&report);
    } else {
        for problem in &applied.planned.resolution.problems {
            printer.problem(problem);
        }
        if args.noop {
            let unresolved = applied.planned.resolution.desired.unresolved.len();
            let (purges, problems) = execute::preview_purges(&config, &applied.planned);
            for problem in &problems {
                printer.problem(problem);
            }
            printer.data(render(
                plan,
                &purges,
                &BTreeMap::new(),
                &summary(plan, unresolved),
            ));
        } else {
            print_outcome(&applied, &report.summary, view.elapsed(), printer);
        }
    }
    let (_, warnings) = execute::finish_run(&config, store.as_ref(), &applied, &run, args.noop);
    for report in warnings {
        printer.problem(&Problem {
            severity: Severity::Warning,
            report,
        });
    }
    Ok(exit_status(
        args.detailed_exitcodes,
        args.noop,
        &report.summary,
    ))
}

/// What the command line asks of the run.
fn apply_options(args: &ApplyArgs) -> ApplyOptions {
    ApplyOptions {
        mode: if args.noop {
            DryRun::Noop
        } else {
            DryRun::Apply
        },
        only: (!args.packs.is_empty()).then(|| args.packs.iter().cloned().collect::<BTreeSet<_>>()),
        allow_empty: args.allow_empty,
        failed_builds: if args.retry_failed {
            FailedBuildPolicy::Retry
        } else {
            FailedBuildPolicy::Wait
        },
        stop: None,
    }
}

fn print_outcome(
    applied: &Applied,
    summary: &ApplySummary,
    elapsed: std::time::Duration,
    printer: Printer,
) {
    for drift in &applied.planned.observed.drift {
        printer.note(format_args!(
            "note: the record of `{}` said {}, disk has {}: disk wins",
            drift.pack,
            drift
                .recorded
                .as_ref()
                .map_or("nothing live", ReleaseId::as_str),
            drift
                .live
                .as_ref()
                .map_or("nothing live", ReleaseId::as_str),
        ));
    }
    for step in &applied.steps {
        for adoption in &step.adopted {
            printer.note(format_args!(
                "note: [{}] moved `{}` aside to `{}`: it was installed outside packsync",
                step.pack,
                adoption.from.display(),
                adoption.to.display()
            ));
        }
        if let Some(error) = &step.error {
            let mut error = error.clone();
            error.pack = Some(step.pack.clone());
            printer.problem(&Problem {
                severity: Severity::Error,
                report: error,
            });
        }
    }
    let width = applied
        .steps
        .iter()
        .map(|s| s.pack.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if let Some(runners) = &applied.runners {
        print_runners(runners, &mut out, printer);
    }
    for step in &applied.steps {
        let target = step.to.as_ref().or(step.from.as_ref());
        let _ = write!(
            out,
            "{:<12} {:<width$}",
            outcome_word(step.operation, step.outcome),
            step.pack.as_str()
        );
        if let Some(target) = target {
            let _ = write!(out, "  {}", revision(target));
        }
        if let Some(release) = &step.release
            && step.outcome == Outcome::Applied
        {
            let _ = write!(out, "  release {release}");
        }
        let _ = writeln!(
            out,
            "  ({}.{}s)",
            step.duration_ms / 1000,
            step.duration_ms % 1000 / 100
        );
        for resource in &step.purged {
            let _ = writeln!(out, "    purged {resource}");
        }
    }
    let mut parts = Vec::new();
    if summary.applied > 0 {
        parts.push(format!("{} applied", summary.applied));
    }
    if summary.failed > 0 {
        parts.push(format!("{} failed", summary.failed));
    }
    if summary.unchanged > 0 {
        parts.push(format!("{} unchanged", summary.unchanged));
    }
    if summary.applied == 0 && summary.failed == 0 {
        let _ = write!(out, "Apply: nothing to change");
        if summary.unchanged > 0 {
            let _ = write!(out, " ({} unchanged)", summary.unchanged);
        }
    } else {
        let _ = write!(out, "Apply: {}", parts.join(", "));
    }
    let _ = write!(out, " in {:.1}s", elapsed.as_secs_f64());
    printer.data(out);
}

/// The runner set line, and its error.
fn print_runners(runners: &RunnerStep, out: &mut String, printer: Printer) {
    if let Some(error) = &runners.error {
        let mut error = error.clone();
        error.message = format!("runners: {}", error.message);
        printer.problem(&Problem {
            severity: Severity::Error,
            report: error,
        });
    }
    let _ = writeln!(
        out,
        "{:<12} runners  set {}: {}",
        outcome_word(runners.operation, runners.outcome),
        runners.to.short(),
        runners.runners.join(", ")
    );
}

/// `installed`, `upgraded`, ... for a change that went live; `failed`, or `reverted` when it
/// went live and was switched back.
fn outcome_word(operation: Operation, outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Failed => "failed",
        Outcome::Reverted => "reverted",
        Outcome::Applied => match operation {
            Operation::Install => "installed",
            Operation::Upgrade => "upgraded",
            Operation::Downgrade => "downgraded",
            Operation::Rebuild => "rebuilt",
            Operation::Reconfigure => "reconfigured",
            Operation::Remove => "removed",
            Operation::Rollback => "rolled back",
            Operation::Repair => "repaired",
        },
    }
}

fn exit_status(detailed_exitcodes: bool, noop: bool, summary: &ApplySummary) -> ExitStatus {
    let changed = if noop {
        summary.planned > 0
    } else {
        summary.applied > 0
    };
    let failed = summary.failed > 0;
    match (detailed_exitcodes, changed, failed) {
        (false, _, true) => ExitStatus::Failure,
        (false, _, false) | (true, false, false) => ExitStatus::Success,
        (true, true, false) => ExitStatus::Changes,
        (true, false, true) => ExitStatus::Failures,
        (true, true, true) => ExitStatus::ChangesAndFailures,
    }
}
