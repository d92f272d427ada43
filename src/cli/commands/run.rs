//! `packsync run`: the agent, until SIGTERM.

use super::load_config;
use crate::cli::{ExitStatus, GlobalArgs, Printer};

pub(crate) fn run(global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let Some(config) = load_config(global, printer) else {
        return Ok(ExitStatus::Failure);
    };
    crate::agent::run(&global.config, config)?;
    Ok(ExitStatus::Success)
}
