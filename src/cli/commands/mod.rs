//! One function per command.

mod apply;
mod check;
mod docs;
mod history;
mod import;
mod plan;
mod rollback;
mod run;
mod status;
mod suspend;
mod verify;

pub(super) use apply::apply;
pub(super) use check::check;
pub(super) use docs::{completions, man};
pub(super) use history::history;
pub(super) use import::import_state;
pub(super) use plan::plan;
pub(super) use rollback::{gc, rollback};
pub(super) use run::run;
pub(super) use status::status;
pub(super) use suspend::{resume, suspend};
pub(super) use verify::verify;

use std::time::Duration;

use crate::cli::{ExitStatus, GlobalArgs, LockArgs, Printer};
use crate::config::{self, ConfigErrors, SiteConfig};
use crate::diagnostics::{Problem, Report, Severity};
use crate::lock::{self, LockError, RunLock};
use crate::state::{self, StateStore};

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

/// The site config, or its problems printed and `None`.
fn load_config(global: &GlobalArgs, printer: Printer) -> Option<SiteConfig> {
    match config::load(&global.config) {
        Ok(config) => Some(config),
        Err(errors) => {
            for problem in config_problems(&errors) {
                printer.problem(&problem);
            }
            None
        }
    }
}

/// What a command works on: the site config, its state store and, for a command that changes
/// the host, the run lock (held until dropped).
struct Site {
    config: SiteConfig,
    store: Box<dyn StateStore>,
    _lock: Option<RunLock>,
}

/// Loads the site config and, when `lock` is given, takes the run lock. `Err(status)`: the
/// command stops with that status, its problems already printed.
fn open_site(
    global: &GlobalArgs,
    lock: Option<&LockArgs>,
    printer: Printer,
) -> anyhow::Result<Result<Site, ExitStatus>> {
    let Some(config) = load_config(global, printer) else {
        return Ok(Err(ExitStatus::Failure));
    };
    let lock = match lock {
        Some(args) => match take_lock(&config, args, printer)? {
            Ok(lock) => Some(lock),
            Err(status) => return Ok(Err(status)),
        },
        None => None,
    };
    let store = match state::open(&config, &config.host()) {
        Ok(store) => store,
        Err(err) => {
            printer.problem(&Problem {
                severity: Severity::Error,
                report: Report::new(&err),
            });
            return Ok(Err(ExitStatus::Failure));
        }
    };
    Ok(Ok(Site {
        store,
        config,
        _lock: lock,
    }))
}

/// The run lock of the config's `state_dir`; when another run holds it, the problem is
/// printed and the exit status is [`ExitStatus::Locked`].
fn take_lock(
    config: &SiteConfig,
    args: &LockArgs,
    printer: Printer,
) -> anyhow::Result<Result<RunLock, ExitStatus>> {
    let wait = args.wait_for_lock.map(Duration::from_secs);
    match lock::acquire(&config.agent.state_dir, wait) {
        Ok(lock) => Ok(Ok(lock)),
        Err(err @ LockError::Held { .. }) => {
            printer.problem(&Problem {
                severity: Severity::Error,
                report: Report::new(&err),
            });
            Ok(Err(ExitStatus::Locked))
        }
        Err(err) => Err(err.into()),
    }
}
