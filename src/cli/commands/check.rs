//! `packsync check`: validates everything `plan` reads and prints every problem.

use serde::Serialize;

use super::config_problems;
use crate::cli::{ExitStatus, GlobalArgs, Printer};
use crate::config;
use crate::desired::{self, WorkTrees};
use crate::diagnostics::{Problem, Report, Severity};

/// `--json` output.
#[derive(Serialize)]
struct CheckReport<'a> {
    valid: bool,
    config: String,
    packs: usize,
    errors: usize,
    warnings: usize,
    problems: &'a [Problem],
}

pub(crate) fn check(global: &GlobalArgs, printer: Printer) -> ExitStatus {
    let (packs, problems) = match config::load(&global.config) {
        Ok(config) => {
            let resolution = desired::resolve(&config, None, WorkTrees::Warn);
            let mut problems = resolution.problems;
            // What `plan` refuses of the packs taken together: dependency cycles.
            let order = crate::plan::plan(
                &resolution.desired,
                &crate::model::Installed::default(),
                config.agent.prune,
            );
            if let Err(err) = order {
                problems.push(Problem {
                    severity: Severity::Error,
                    report: Report::new(&err),
                });
            }
            problems.extend(no_purge_warning(&config));
            problems.extend(no_restart_warning(&config));
            (config.packs.len(), problems)
        }
        Err(errors) => (0, config_problems(&errors)),
    };
    let count = |severity| problems.iter().filter(|p| p.severity == severity).count();
    let report = CheckReport {
        valid: count(Severity::Error) == 0,
        config: global.config.display().to_string(),
        packs,
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        problems: &problems,
    };
    if global.json {
        printer.json(&report);
    } else {
        for problem in &problems {
            printer.problem(problem);
        }
        let verdict = if report.valid { "valid" } else { "invalid" };
        printer.data(format_args!(
            "{}: {verdict}: {} {}, {} {}, {} {}",
            report.config,
            report.packs,
            plural(report.packs, "pack"),
            report.errors,
            plural(report.errors, "error"),
            report.warnings,
            plural(report.warnings, "warning"),
        ));
    }
    if report.valid {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// Registration without purging: what a new release no longer carries stays in StackStorm.
fn no_purge_warning(config: &config::SiteConfig) -> Option<Problem> {
    let stackstorm = &config.stackstorm;
    if stackstorm.register.is_none() || stackstorm.purging().is_some() {
        return None;
    }
    Some(Problem {
        severity: Severity::Warning,
        report: Report {
            pack: None,
            message: format!(
                "`{}`: `[stackstorm] register` is set without `registered` and `purge`: actions, \
                 rules and sensors a new release no longer carries stay registered in StackStorm \
                 (registration never deletes)",
                config.path.display()
            ),
            causes: Vec::new(),
            location: None,
            hint: Some(
                "set `registered` and `purge`; `packaging/st2/packsync-st2` adapts the `st2` CLI \
                 to them (see site-config/packsync.toml)"
                    .to_string(),
            ),
            output: None,
        },
    })
}

/// Runners without `restart`: an action runner that has not restarted keeps the old runner
/// module, while the files it loads lazily come from the new set.
fn no_restart_warning(config: &config::SiteConfig) -> Option<Problem> {
    let runner = config.runners.first()?;
    if config.stackstorm.restart.is_some() {
        return None;
    }
    Some(Problem {
        severity: Severity::Warning,
        report: Report {
            pack: None,
            message: "`[[runner]]` is set without `[stackstorm] restart`: after a runner set \
                      switches, a running st2actionrunner keeps the old runner module while \
                      the files it loads later come from the new set"
                .to_string(),
            causes: Vec::new(),
            location: Some(runner.location.clone()),
            hint: Some(
                "set `restart = [\"st2ctl\", \"restart-component\", \"st2actionrunner\"]` \
                 (and st2workflowengine for workflow runners)"
                    .to_string(),
            ),
            output: None,
        },
    })
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
