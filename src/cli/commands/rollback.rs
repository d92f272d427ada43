//! `packsync rollback` and `packsync gc`: the two commands that act on kept releases.

use std::fmt::Write as _;

use serde::Serialize;

use super::plan::revision;
use super::{Site, open_site};
use crate::cli::{ExitStatus, GcArgs, GlobalArgs, Printer, ProgressView, RollbackArgs};
use crate::config::SiteConfig;
use crate::diagnostics::{Problem, Severity};
use crate::execute::{self, Hold, Phase, RunInfo};
use crate::model::{PackName, ReleaseId};
use crate::state::{Outcome, StateStore};
use crate::store::{Collected, Sweep};

pub(crate) fn rollback(
    global: &GlobalArgs,
    args: &RollbackArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site {
        config,
        store,
        _lock,
    } = match open_site(global, Some(&args.lock), printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let Some(pack) = &args.pack else {
        return rollback_runners(&config, store.as_ref(), args, global, printer);
    };
    let to = match args.to.as_deref() {
        Some(name) => Some(ReleaseId::from_name(name).ok_or_else(|| {
            anyhow::anyhow!("`{name}` is not a release id (e.g. `1.8.1-3f2a9c1-e4b1c2d8`)")
        })?),
        None => None,
    };
    let view = ProgressView::new(global.progress, global.quiet);
    let progress = |pack: &PackName, phase: Phase<'_>| view.show(pack, phase);
    let hold = if args.no_hold {
        Hold::No
    } else {
        Hold::UntilResume { by: user() }
    };
    let step = execute::rollback(
        &config,
        store.as_ref(),
        pack,
        to.as_ref(),
        &hold,
        RunInfo::new(config.host()),
        &progress,
    );
    view.clear();
    let step = step?;
    if global.json {
        printer.json(&step);
    } else {
        if let Some(error) = &step.error {
            let mut error = error.clone();
            error.pack = Some(step.pack.clone());
            printer.problem(&Problem {
                severity: Severity::Error,
                report: error,
            });
        }
        let target = step.to.as_ref().map(revision).unwrap_or_default();
        match step.outcome {
            Outcome::Applied => {
                let mut out = format!("rolled back  {}  {target}", step.pack);
                for resource in &step.purged {
                    let _ = write!(out, "\n    purged {resource}");
                }
                printer.data(out);
                printer.note(match hold {
                    Hold::UntilResume { .. } => format!(
                        "note: `{pack}` is held here (`packsync status` shows it): `apply` and \
                         the agent leave it until `packsync resume {pack}`"
                    ),
                    Hold::No => "note: the site config still asks for what was live before; \
                                 the next `apply` goes back to it unless the config changes"
                        .to_string(),
                });
            }
            Outcome::Failed | Outcome::Reverted => {
                printer.data(format_args!("failed       {}  {target}", step.pack));
            }
        }
    }
    Ok(if step.outcome == Outcome::Applied {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// Who runs the command, for the hold's reason: the user behind `sudo`, else the login name,
/// else the uid.
fn user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|user| !user.is_empty()))
        .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()))
}

/// `rollback --runners`.
fn rollback_runners(
    config: &SiteConfig,
    store: &dyn StateStore,
    args: &RollbackArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let step = execute::rollback_runners(
        config,
        store,
        args.to.as_deref(),
        &RunInfo::new(config.host()),
    )?;
    if global.json {
        printer.json(&step);
    } else {
        if let Some(error) = &step.error {
            let mut error = error.clone();
            error.message = format!("runners: {}", error.message);
            printer.problem(&Problem {
                severity: Severity::Error,
                report: error,
            });
        }
        let word = if step.outcome == Outcome::Applied {
            "rolled back"
        } else {
            "failed"
        };
        printer.data(format_args!(
            "{word:<12} runners  set {}: {}",
            step.to.short(),
            step.runners.join(", ")
        ));
        if step.outcome == Outcome::Applied {
            printer.note(
                "note: the site config still asks for the runners that were live before; the \
                 next `apply` goes back to them unless the config changes",
            );
        }
    }
    Ok(if step.outcome == Outcome::Applied {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

#[derive(Serialize)]
struct GcReport<'a> {
    keep: usize,
    dry_run: bool,
    #[serde(flatten)]
    collected: &'a Collected,
}

pub(crate) fn gc(
    global: &GlobalArgs,
    args: &GcArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site {
        config,
        store,
        _lock,
    } = match open_site(global, Some(&args.lock), printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let keep = args.keep.map_or(config.agent.keep_releases, |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    let sweep = if args.dry_run {
        Sweep::ListOnly
    } else {
        Sweep::Remove
    };
    let collected = execute::collect_garbage(&config, store.as_ref(), keep, sweep)?;
    if global.json {
        printer.json(&GcReport {
            keep,
            dry_run: args.dry_run,
            collected: &collected,
        });
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for path in collected
            .releases
            .iter()
            .chain(&collected.envs)
            .chain(&collected.runner_sets)
            .chain(&collected.dists)
        {
            printer.data(format_args!("{verb}  {}", path.display()));
        }
        let dists = match collected.dists.len() {
            0 => String::new(),
            n => format!(" (and {n} distributions from the store)"),
        };
        printer.data(format_args!(
            "gc: {verb} {} releases and {} virtualenvs{dists} (kept {keep} per pack, and the \
             release the site config asks for)",
            collected.releases.len(),
            collected.envs.len()
        ));
    }
    Ok(ExitStatus::Success)
}
