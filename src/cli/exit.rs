//! The exit codes of every command, in one place (see `design.md`).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Nothing to change, or success.
    Success,
    /// An error: bad input, an unreadable source, a failed step.
    Failure,
    /// With `--detailed-exitcodes`: changes pending (`plan`) or applied.
    Changes,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Changes => 2,
        })
    }
}
