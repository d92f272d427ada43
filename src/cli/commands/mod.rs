//! One function per command.

mod check;
mod plan;

pub(super) use check::check;
pub(super) use plan::plan;

use crate::config::ConfigErrors;
use crate::diagnostics::{Problem, Report, Severity};

/// Every error of an invalid site config, as problems.
fn config_problems(errors: &ConfigErrors) -> Vec<Problem> {
    errors
        .0
        .iter()
        .map(|err| Problem {
            severity: Severity::Error,
            report: Report::new(err),
        })
        .collect()
}
