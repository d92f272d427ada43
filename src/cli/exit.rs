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
    /// With `--detailed-exitcodes`: some changes failed.
    Failures,
    /// With `--detailed-exitcodes`: changes applied and some failed.
    ChangesAndFailures,
    /// Skipped: another run holds the lock.
    Locked,
    /// The command line itself is wrong (an unknown flag, a missing argument): `EX_USAGE`,
    /// never 2, which `--detailed-exitcodes` callers (Puppet's `exec`, the systemd unit's
    /// `SuccessExitStatus=2`) read as "changes applied".
    Usage,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Changes => 2,
            ExitStatus::Failures => 4,
            ExitStatus::ChangesAndFailures => 6,
            ExitStatus::Locked => 75,
            ExitStatus::Usage => 64,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}
