//! `packsync history`: what packsync changed on this host, newest first.
//!
//! `--json` prints `{"entries": [...]}`.

use std::fmt::Write as _;

use serde::Serialize;

use super::plan::revision_change;
use super::{Site, open_site};
use crate::cli::{ExitStatus, GlobalArgs, HistoryArgs, Printer};
use crate::state::{HistoryEntry, RunnerSwitch, StateStore};

#[derive(Serialize)]
struct HistoryReport<'a> {
    entries: &'a [HistoryEntry],
}

pub(crate) fn history(
    global: &GlobalArgs,
    args: &HistoryArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site { store, .. } = match open_site(global, None, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    if args.runners {
        return runner_history(store.as_ref(), args, global, printer);
    }
    let entries = store.history(args.pack.as_ref(), Some(args.limit))?;
    if global.json {
        printer.json(&HistoryReport { entries: &entries });
        return Ok(ExitStatus::Success);
    }
    let width = entries
        .iter()
        .map(|e| e.pack.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for entry in &entries {
        let change = revision_change(entry.from.as_ref(), entry.to.as_ref());
        let _ = writeln!(
            out,
            "{}  {:<width$}  {:<11} {:<11}  {change}",
            entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            entry.pack.as_str(),
            entry.operation.as_str(),
            entry.outcome.as_str(),
        );
        if let Some(error) = &entry.error {
            let _ = writeln!(out, "    {error}");
        }
    }
    if entries.is_empty() {
        out.push_str("No history yet");
    }
    printer.data(out.trim_end());
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct RunnerHistoryReport<'a> {
    switches: &'a [RunnerSwitch],
}

/// `history --runners`: the runner set switches, newest first.
fn runner_history(
    store: &dyn StateStore,
    args: &HistoryArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let switches = store.runner_switches(Some(args.limit))?;
    if global.json {
        printer.json(&RunnerHistoryReport {
            switches: &switches,
        });
        return Ok(ExitStatus::Success);
    }
    let mut out = String::new();
    for switch in &switches {
        let from = switch.from.as_ref().map_or("none", |digest| digest.short());
        let _ = writeln!(
            out,
            "{}  runners  {:<11} {:<11}  set {from} -> {}: {}",
            switch.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            switch.operation.as_str(),
            switch.outcome.as_str(),
            switch.to.short(),
            switch.runners.join(", ")
        );
        if let Some(error) = &switch.error {
            let _ = writeln!(out, "    {error}");
        }
    }
    if switches.is_empty() {
        out.push_str("No runner set switched yet");
    }
    printer.data(out.trim_end());
    Ok(ExitStatus::Success)
}
