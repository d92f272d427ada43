//! `packsync check`: validates everything `plan` reads and prints every problem.

use serde::Serialize;

use super::config_problems;
use crate::cli::{ExitStatus, GlobalArgs, Printer};
use crate::config;
use crate::desired::{self, WorkTrees};
use crate::diagnostics::{Problem, Severity};

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
            (config.packs.len(), resolution.problems)
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

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
